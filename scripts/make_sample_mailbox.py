"""Write examples/acme-support.mbox: a fictional outdoor shop's support mailbox.

    .venv/bin/python scripts/make_sample_mailbox.py

Deterministic (fixed seed). About 40 threads between customers and Acme Outdoor's support
team, with what real mail has: quoted replies ("On ... wrote:" and "> "), Outlook-style
headers, signatures with phone numbers, customer names and addresses, order numbers, an
out-of-office auto-reply, a bounce and a newsletter (which the importer filters out).
Everyone and everything in it is invented.
"""

from __future__ import annotations

import email.utils
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "examples" / "acme-support.mbox"
SUPPORT = ("Maya Lindqvist", "support@acme-outdoor.example")
SIGNATURE = ("\n\nWarm regards,\nMaya\n--\nMaya Lindqvist | Customer Care, Acme Outdoor\n"
             "Phone: +44 20 7946 0958 | acme-outdoor.example\n")

CUSTOMERS = [
    ("Oliver Bennett", "oliver.bennett@mailbox.example", "+44 7700 900123", "14 Elm Row, Leeds LS2 7HY"),
    ("Priya Raman", "priya.r@inbox.example", "+44 7700 900456", "3 Mill Lane, Bristol BS1 4DJ"),
    ("Tomás García", "tgarcia@correo.example", "+34 612 345 678", "Calle Mayor 12, 28013 Madrid"),
    ("Hannah Fischer", "h.fischer@post.example", "+49 151 23456789", "Bergstraße 5, 10115 Berlin"),
    ("Liam O'Connor", "liam.oconnor@web.example", "+353 85 123 4567", "22 Quay St, Galway H91 X2R"),
    ("Amara Okafor", "amara.okafor@mail.example", "+44 7700 900789", "8 Rose Court, Manchester M1 5AN"),
    ("Chen Wei", "chen.wei@letters.example", "+44 7700 900321", "41 King St, Edinburgh EH2 4AA"),
    ("Sofia Rossi", "sofia.rossi@posta.example", "+39 347 123 4567", "Via Roma 7, 20121 Milano"),
    ("Jack Thompson", "jackt@home.example", "+44 7700 900654", "2 Beech Ave, Cardiff CF10 1AA"),
    ("Emma Dubois", "emma.dubois@courrier.example", "+33 6 12 34 56 78", "5 rue Victor Hugo, 69002 Lyon"),
]

PRODUCTS = ["Trailblazer 2 tent", "Summit 45L backpack", "Drift down sleeping bag", "Ridge hiking boots",
            "Storm shell jacket", "Alpine trekking poles", "Ember camping stove", "Glacier water filter"]

# (customer question, support answer, optional follow-up question, optional follow-up answer)
TOPICS = [
    ("Hi,\n\nI ordered the {p} last week (order #{o}) and it still hasn't arrived. The tracking page "
     "hasn't updated since Tuesday. Can you check where it is?\n\nThanks,\n{first}",
     "Hi {first},\n\nThank you for getting in touch, and I'm sorry your {p} is taking longer than it "
     "should. I've checked order #{o}: the parcel is with our courier and was delayed at their depot. "
     "It is now out for delivery and should reach you within two working days. If it hasn't arrived by "
     "then, reply to this email and I'll send a replacement straight away.",
     "Thanks Maya. It still hasn't come today - should I wait until Monday?\n\n{first}",
     "Hi {first},\n\nYes, please give it until Monday. If it isn't with you by then, I'll dispatch a "
     "replacement by express delivery at no cost, so you won't be without it for your trip."),
    ("Hello,\n\nI'd like to return the {p} from order #{o}. It's unused and still in the box, it just "
     "isn't the right fit. How do I send it back?\n\nBest,\n{first}",
     "Hi {first},\n\nOf course. You can return any unused item within 60 days. I've emailed a prepaid "
     "returns label for order #{o}: print it, attach it to the original box and drop it at any post "
     "office. Your refund goes back to the original payment method within 5 working days of the item "
     "reaching us.", None, None),
    ("Hi there,\n\nDoes the {p} come in a larger size? The medium I bought (order #{o}) is a bit tight "
     "across the shoulders.\n\nCheers,\n{first}",
     "Hi {first},\n\nThanks for your message. Yes, the {p} also comes in large and extra large. The "
     "easiest route is an exchange: reply with the size you'd like and I'll send it out as soon as the "
     "medium is on its way back to us. Exchanges are free.",
     "Great, please send the large. I'll post the medium back tomorrow.\n\n{first}",
     "Hi {first},\n\nDone: the large {p} is reserved for you and will ship as soon as the courier scans "
     "your return. You'll get a tracking link by email."),
    ("Hello Acme,\n\nThe zip on my {p} broke after two trips. I bought it in March (order #{o}). Is this "
     "covered by the warranty?\n\nRegards,\n{first}",
     "Hi {first},\n\nI'm sorry to hear that. Yes, zips are covered by our two-year warranty. Could you "
     "send a photo of the broken zip? Once I have it, I'll arrange a free repair or, if a repair isn't "
     "possible, a replacement.",
     "Photo attached - the slider came off completely.\n\n{first}",
     "Hi {first},\n\nThank you for the photo. That's a manufacturing fault, so I've approved a "
     "replacement {p}. It ships today; there's no need to send the old one back."),
    ("Hi,\n\nCan I use the {p} in winter, or is it only for summer trips? I'm planning a hike in the "
     "Highlands in January.\n\nThanks,\n{first}",
     "Hi {first},\n\nGreat question. The {p} is rated for three seasons, so it handles cold nights down "
     "to about -5°C, but for January in the Highlands I'd pair it with a winter liner or choose our "
     "four-season range. Happy to suggest a combination if you tell me the nights you expect.", None, None),
    ("Hello,\n\nI was charged twice for order #{o} ({p}). Could you refund the duplicate payment?\n\n"
     "Many thanks,\n{first}",
     "Hi {first},\n\nThank you for flagging this, and apologies for the trouble. I can see two payments "
     "for order #{o}; the second one was a duplicate. I've refunded it today, and it will appear on your "
     "statement within 3 to 5 working days.", None, None),
    ("Hi Acme team,\n\nIs there any discount for a group order? Our scout troop needs twelve {p}s for "
     "the summer camp.\n\n{first}",
     "Hi {first},\n\nHow lovely to hear about the camp! For groups of ten or more we offer 15% off and "
     "free delivery. Reply with the sizes or colours you need and a delivery address, and I'll put the "
     "order together and send you a quote.", None, None),
    ("Hello,\n\nHow do I clean my {p}? It got very muddy on the weekend.\n\n{first}",
     "Hi {first},\n\nThanks for asking before washing it. Let the mud dry, brush it off, then sponge the "
     "fabric with lukewarm water and a little mild soap. Avoid detergents and never put it in a dryer. "
     "Let it air-dry fully before you store it, so it doesn't get mouldy.", None, None),
]


def main() -> None:
    rng = random.Random(7)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    messages: list[str] = []
    n = 0

    def msg(sender: tuple[str, str], to: tuple[str, str], subject: str, body: str, when: datetime,
            mid: str, reply_to: list[str] | None = None, extra: str = "") -> str:
        headers = [f"From {sender[1]} {when.strftime('%a %b %d %H:%M:%S %Y')}",
                   f"From: {email.utils.formataddr(sender)}", f"To: {email.utils.formataddr(to)}",
                   f"Subject: {subject}", f"Date: {email.utils.format_datetime(when)}", f"Message-ID: <{mid}>"]
        if reply_to:
            headers += [f"In-Reply-To: <{reply_to[-1]}>", "References: " + " ".join(f"<{r}>" for r in reply_to)]
        headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                    "Content-Transfer-Encoding: 8bit"]
        body = "\n".join((">" + line) if line.startswith("From ") else line for line in body.splitlines())
        return "\n".join(headers) + extra + "\n\n" + body + "\n\n"

    def quote(text: str, who: str, when: datetime, outlook: bool) -> str:
        if outlook:
            return (f"\n\n________________________________\nFrom: {who}\nSent: {when.strftime('%d %B %Y %H:%M')}\n"
                    f"To: Acme Outdoor Support\nSubject: Re: your order\n\n{text}")
        quoted = "\n".join("> " + line if line else ">" for line in text.splitlines())
        return f"\n\nOn {when.strftime('%a, %d %b %Y at %H:%M')}, {who} wrote:\n{quoted}"

    for i in range(40):
        name, addr, phone, street = CUSTOMERS[i % len(CUSTOMERS)]
        first = name.split()[0]
        topic = TOPICS[i % len(TOPICS)]
        product = PRODUCTS[rng.randrange(len(PRODUCTS))]
        order = f"AO-{rng.randrange(10000, 99999)}"
        fill = {"p": product, "o": order, "first": first}
        subject = ["Where is my order?", "Return request", "Wrong size", "Broken zip", "Winter use?",
                   "Charged twice", "Group order", "Cleaning question"][i % len(TOPICS)]
        when = start + timedelta(days=i, hours=rng.randrange(0, 8), minutes=rng.randrange(60))
        ids: list[str] = []
        q1 = topic[0].format(**fill)
        if rng.random() < 0.5:  # customers often sign off with their details
            q1 += f"\n\n{name}\n{street}\nMob: {phone}"
        ids.append(f"c{i}.1@{addr.split('@')[1]}")
        messages.append(msg((name, addr), SUPPORT, subject, q1, when, ids[-1]))
        n += 1
        a1 = topic[1].format(**fill) + SIGNATURE
        t2 = when + timedelta(hours=rng.randrange(1, 20))
        ids.append(f"s{i}.1@acme-outdoor.example")
        messages.append(msg(SUPPORT, (name, addr), "Re: " + subject,
                            a1 + quote(q1, f"{name} <{addr}>", when, outlook=False), t2, ids[-1], list(ids[:-1])))
        n += 1
        if topic[2]:
            t3 = t2 + timedelta(hours=rng.randrange(2, 30))
            q2 = topic[2].format(**fill)
            ids.append(f"c{i}.2@{addr.split('@')[1]}")
            messages.append(msg((name, addr), SUPPORT, "RE: " + subject,
                                q2 + quote(a1, "Acme Outdoor Support", t2, outlook=i % 3 == 0), t3, ids[-1],
                                list(ids[:-1])))
            t4 = t3 + timedelta(hours=rng.randrange(1, 10))
            ids.append(f"s{i}.2@acme-outdoor.example")
            messages.append(msg(SUPPORT, (name, addr), "Re: " + subject,
                                topic[3].format(**fill) + SIGNATURE + quote(q2, f"{name} <{addr}>", t3, False),
                                t4, ids[-1], list(ids[:-1])))
            n += 2
    # Mail a support inbox also gets, which must not become training data.
    when = start + timedelta(days=41)
    messages.append(msg(("Oliver Bennett", "oliver.bennett@mailbox.example"), SUPPORT,
                        "Automatic reply: Re: Where is my order?",
                        "I am out of the office until Monday with limited access to email.", when,
                        "ooo1@mailbox.example", ["s0.1@acme-outdoor.example"], "\nAuto-Submitted: auto-replied"))
    messages.append(msg(("Mail Delivery System", "mailer-daemon@acme-outdoor.example"), SUPPORT,
                        "Undelivered Mail Returned to Sender",
                        "This is the mail system at host acme-outdoor.example.\n\nI'm sorry to have to inform you "
                        "that your message could not be delivered to one or more recipients.",
                        when + timedelta(hours=1), "bounce1@acme-outdoor.example"))
    messages.append(msg(("Acme Outdoor", "news@acme-outdoor.example"), ("Subscribers", "list@acme-outdoor.example"),
                        "Spring sale: 20% off tents", "Our spring sale starts today. Unsubscribe at any time.",
                        when + timedelta(hours=2), "news1@acme-outdoor.example", None,
                        "\nList-Unsubscribe: <mailto:unsubscribe@acme-outdoor.example>\nPrecedence: bulk"))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("".join(messages), encoding="utf-8")
    print(f"wrote {OUT} ({n + 3} messages, 40 threads)")


if __name__ == "__main__":
    main()
