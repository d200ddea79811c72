"""A model's licence, worked out in one place for every command, API and document that shows it.

Two answers, both from what the store holds (no network, no guessing):

- ``model_licence``: the short id or name ("apache-2.0", "gemma") for tables, cards and the
  ledger. The first of, in this order:

  1. the manifest config's ``license`` (the weights' own metadata, e.g. GGUF
     ``general.license`` or the ``license:`` of a Hugging Face README);
  2. the manifest source's ``license`` (what the importer or the bundled-model table says);
  3. ``recorded``: a licence the caller already knows from the ledger, e.g. the one the base
     model's import record names (a fine-tune's own files may carry none);
  4. the first non-empty line of the LICENSE text layer, cut to ``FIRST_LINE_CHARS``.

- ``licence_terms``: the full text where the model ships it (the LICENSE layer), else the
  short answer; what Ollama's ``/api/show`` "license" and ``freehold show --license`` give.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from freehold.store.manifest import Manifest

# A licence file's first line is its title ("Apache License", "Gemma Terms of Use"); longer
# than this it is prose, not a name, and is cut so tables and records stay one line.
FIRST_LINE_CHARS = 120


def model_licence(manifest: Manifest, license_text: str | None, recorded: str | None = None) -> str | None:
    """The short licence of the model ``manifest`` describes (None: nothing says), in the order above.

    ``license_text``: the manifest's LICENSE layer (``store.text_layer(manifest, MediaType.LICENSE)``)."""
    for value in (manifest.config.get("license"), (manifest.source or {}).get("license"), recorded):
        if value:
            return str(value)
    first = next((line.strip() for line in (license_text or "").splitlines() if line.strip()), "")
    return first[:FIRST_LINE_CHARS] or None


def licence_terms(manifest: Manifest, license_text: str | None) -> str | None:
    """The full licence text when the model ships one, else its short licence (None: nothing says)."""
    return license_text or model_licence(manifest, None)


# -- licences as data (issue 16) ---------------------------------------------------------------
# Each licence a model or dataset may come under: its id (SPDX where SPDX has one, ScanCode's
# LicenseRef-scancode-* otherwise; the license-expression package knows both), what a derivative
# must do (obligations) and what its users may not (restrictions), with the source that says so.
# A name, id or link not in this table is shown as unknown, never guessed.

PERMISSIVE_KIND, COPYLEFT_KIND = "permissive", "copyleft"
RESTRICTED_KIND, NON_COMMERCIAL_KIND = "restricted", "non-commercial"


@dataclass(frozen=True)
class Obligation:
    kind: str  # notice | attribution | naming | share-alike | pass-on-restrictions | acceptable-use
    text: str


@dataclass(frozen=True)
class Licence:
    id: str  # SPDX id, or LicenseRef-scancode-<key>
    name: str
    kind: str  # permissive | copyleft | restricted | non-commercial
    source: str  # the licence's own text, where its obligations and restrictions are read from
    aliases: tuple[str, ...] = ()  # ids, names and links seen in model metadata (lower case)
    obligations: tuple[Obligation, ...] = ()
    restrictions: tuple[str, ...] = ()  # uses the licence forbids or conditions, each with its clause
    commercial: bool = True  # commercial use allowed (within the restrictions)
    # The declared uses (USES) the licence forbids outright, each with the clause that does.
    forbids: tuple[tuple[str, str], ...] = ()
    # The text a NOTICE file of every copy and derivative must hold, where the licence words it.
    notice: str | None = None

    @property
    def restricts_use(self) -> bool:
        return self.kind in (RESTRICTED_KIND, NON_COMMERCIAL_KIND)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "source": self.source,
                "restricts_use": self.restricts_use, "commercial": self.commercial,
                "obligations": [{"kind": o.kind, "text": o.text} for o in self.obligations],
                "restrictions": list(self.restrictions), "forbids": [list(f) for f in self.forbids]}


_NOTICE = Obligation("notice", "keep the licence text and copyright notices with every copy and derivative")
LICENCES: tuple[Licence, ...] = (
    Licence("Apache-2.0", "Apache License 2.0", PERMISSIVE_KIND, "https://www.apache.org/licenses/LICENSE-2.0",
            ("apache-2.0", "apache 2.0", "apache license 2.0", "apache license, version 2.0", "apache license",
             "http://www.apache.org/licenses/license-2.0", "https://www.apache.org/licenses/license-2.0"),
            (_NOTICE, Obligation("notice", "state the changes made to modified files (§4b) and pass on a NOTICE file "
                                           "if the work has one (§4d)"))),
    Licence("MIT", "MIT License", PERMISSIVE_KIND, "https://opensource.org/license/mit", ("mit", "mit license"),
            (_NOTICE,)),
    Licence("BSD-3-Clause", "BSD 3-Clause License", PERMISSIVE_KIND, "https://opensource.org/license/bsd-3-clause",
            ("bsd-3-clause", "bsd 3-clause"), (_NOTICE,)),
    Licence("BSD-2-Clause", "BSD 2-Clause License", PERMISSIVE_KIND, "https://opensource.org/license/bsd-2-clause",
            ("bsd-2-clause", "bsd 2-clause"), (_NOTICE,)),
    Licence("CC0-1.0", "Creative Commons Zero 1.0", PERMISSIVE_KIND,
            "https://creativecommons.org/publicdomain/zero/1.0/legalcode", ("cc0-1.0", "cc0")),
    Licence("CC-BY-4.0", "Creative Commons Attribution 4.0", PERMISSIVE_KIND,
            "https://creativecommons.org/licenses/by/4.0/legalcode",
            ("cc-by-4.0", "cc by 4.0", "https://creativecommons.org/licenses/by/4.0/"),
            (Obligation("attribution", "credit the creator, link the licence and say if changes were made (§3a)"),)),
    Licence("CC-BY-SA-4.0", "Creative Commons Attribution-ShareAlike 4.0", COPYLEFT_KIND,
            "https://creativecommons.org/licenses/by-sa/4.0/legalcode",
            ("cc-by-sa-4.0", "cc by-sa 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
            (Obligation("attribution", "credit the creator, link the licence and say if changes were made (§3a)"),
             Obligation("share-alike", "adaptations must be licensed under the same or a compatible licence (§3b)"))),
    Licence("CC-BY-NC-4.0", "Creative Commons Attribution-NonCommercial 4.0", NON_COMMERCIAL_KIND,
            "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
            ("cc-by-nc-4.0", "cc by-nc 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
            (Obligation("attribution", "credit the creator, link the licence and say if changes were made (§3a)"),),
            ("no use primarily intended for or directed towards commercial advantage or monetary compensation "
             "(§1i, §2a1)",), commercial=False,
            forbids=(("commercial", "CC BY-NC 4.0 §2(a)(1) licenses the material \"for NonCommercial purposes only\"; "
                                    "§1(i): NonCommercial means \"not primarily intended for or directed towards "
                                    "commercial advantage or monetary compensation\""),)),
    Licence("LicenseRef-scancode-gemma-tou-2024-04-01", "Gemma Terms of Use", RESTRICTED_KIND,
            "https://ai.google.dev/gemma/terms",
            ("gemma", "gemma terms of use", "https://ai.google.dev/gemma/terms", "gemma-tou-2024-04-01"),
            (Obligation("pass-on-restrictions", "every derivative must carry the use restrictions of §3.2 (the "
                                                "Prohibited Use Policy) and be distributed under terms that "
                                                "include them (§3.1)"),
             Obligation("notice", "give recipients a copy of the Gemma terms and a NOTICE text file saying \"Gemma "
                                  "is provided under and subject to the Gemma Terms of Use found at "
                                  "ai.google.dev/gemma/terms\" (§3.1)"),
             Obligation("notice", "mark modified files as modified (§3.1)")),
            ("no use for the purposes of the Gemma Prohibited Use Policy "
             "(https://ai.google.dev/gemma/prohibited_use_policy), incorporated by §3.2",),
            notice="Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms"),
    *(Licence(f"LicenseRef-scancode-llama-{v}-license-2024", f"Llama {v} Community License", RESTRICTED_KIND,
              f"https://www.llama.com/llama{v.replace('.', '_')}/license/",
              (f"llama{v}", f"llama-{v}", f"llama {v} community license", f"llama-{v}-license-2024",
               f"https://www.llama.com/llama{v.replace('.', '_')}/license/") + (("llama3",) if v == "3.1" else ()),
              (Obligation("naming", "a derivative model's name must begin with \"Llama\" (§1b(i))"),
               Obligation("attribution", "display \"Built with Llama\" prominently on a related website, user "
                                         "interface, blog post, about page or product documentation (§1b(i))"),
               Obligation("notice", "pass on a copy of the licence and the Notice text \"Llama "
                                    f"{v} is licensed under the Llama {v} Community License, Copyright © Meta "
                                    "Platforms, Inc. All Rights Reserved.\" (§1b(i), §1b(iii))"),
               Obligation("acceptable-use", "comply with the Llama Acceptable Use Policy (https://www.llama.com/"
                                            f"llama{v.replace('.', '_')}/use-policy) (§1b(iv))")),
              ("no use that violates the Llama Acceptable Use Policy (§1b(iv))",
               "a licensee with more than 700 million monthly active users must request a licence from Meta (§2)"),
              notice=f"Llama {v} is licensed under the Llama {v} Community License, Copyright © Meta Platforms, "
                     "Inc. All Rights Reserved.")
      for v in ("3.1", "3.2", "3.3")),
    Licence("LicenseRef-scancode-bigscience-open-rail-m", "BigScience OpenRAIL-M", RESTRICTED_KIND,
            "https://www.licenses.ai/blog/2022/8/26/bigscience-open-rail-m-license",
            ("openrail-m", "bigscience-openrail-m", "bigscience-open-rail-m", "openrail", "creativeml-openrail-m"),
            (Obligation("pass-on-restrictions", "the use restrictions of Attachment A must be included, as an "
                                                "enforceable provision, in any agreement governing the use or "
                                                "distribution of the model or its derivatives (§4a)"),
             Obligation("notice", "give recipients a copy of the licence and keep its notices (§4b, §4d)"),
             Obligation("notice", "mark modified files as modified (§4c)")),
            ("no use for the restricted uses of Attachment A (unlawful use, harm to minors, disinformation, "
             "harassment, automated legal decisions, medical advice and results interpretation, ...) (§5)",)),
)
_BY_ALIAS: dict[str, Licence] = {}
for _lic in LICENCES:
    for _key in (_lic.id.lower(), *_lic.aliases):
        _BY_ALIAS[_key.lower().rstrip("/")] = _lic


def identify(value: str | None = None, *, name: str | None = None, link: str | None = None,
             text: str | None = None) -> Licence | None:
    """The licence metadata names: a model's ``license`` (GGUF ``general.license``, a Hugging Face
    card's ``license``), the card's ``license_name`` and ``license_link`` (used when ``license`` is
    ``other``), or the first line of a LICENSE text. None when nothing names a licence of the
    table (shown as unknown, never guessed)."""
    for candidate in (value, name, link):
        if candidate and str(candidate).strip().lower() not in ("other", "unknown", ""):
            found = _BY_ALIAS.get(str(candidate).strip().lower().rstrip("/"))
            if found is not None:
                return found
    title = next((line.strip().lower() for line in (text or "").splitlines() if line.strip()), "")
    for prefix, licence_id in (("apache license", "Apache-2.0"), ("mit license", "MIT"),
                               ("gemma terms of use", "LicenseRef-scancode-gemma-tou-2024-04-01")):
        if title.startswith(prefix):
            return next(lic for lic in LICENCES if lic.id == licence_id)
    m = re.match(r"llama (3\.[123]) (?:version release date|community license)", title)
    if m:
        return next((lic for lic in LICENCES if lic.id == f"LicenseRef-scancode-llama-{m[1]}-license-2024"), None)
    return None


def by_id(licence_id: str) -> Licence | None:
    return next((lic for lic in LICENCES if lic.id.lower() == licence_id.lower()), None)


# -- licence expressions: what a derivative inherits -------------------------------------------
# A model made from others (a tune of a base on a dataset, an export, a quantization, later a
# merge of several) is under every licence of what it came from: the expression "A AND B" of
# their terms, each kept in the spelling its source used, each once. A dataset the user imported
# without a licence is their own data and adds none; a model that states none adds NOT_STATED,
# shown as "not stated", so an unknown never disappears into a derivative's licence.

NOT_STATED = "NOASSERTION"  # SPDX's word for "the source says nothing"
USES = ("commercial", "research", "personal")  # what ``freehold serve --declare-use`` may declare
# A licence's kinds from loosest to strictest: an expression is as strict as its strictest term.
KIND_ORDER = (PERMISSIVE_KIND, COPYLEFT_KIND, NON_COMMERCIAL_KIND, RESTRICTED_KIND)


@dataclass(frozen=True)
class Term:
    text: str  # as its source spelled it ("apache-2.0", "gemma", "Apache-2.0 OR MIT")
    licence: Licence | None  # None: not in the table (shown as named, never guessed)

    @property
    def key(self) -> str:
        return self.licence.id.lower() if self.licence else self.text.lower()


def _split_and(expression: str) -> list[str]:
    """Top-level ``AND`` terms of an SPDX-style expression; a parenthesised group stays one term."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(expression):
        ch = expression[i]
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and expression[i:i + 5].upper() == " AND ":
            out.append(expression[start:i])
            start = i = i + 5
            continue
        i += 1
    out.append(expression[start:])
    terms = [t.strip() for t in out if t.strip()]
    return [t[1:-1].strip() if t.startswith("(") and t.endswith(")") and t.count("(") == 1 else t for t in terms]


def terms(expression: str | None, *, link: str | None = None, text: str | None = None) -> list[Term]:
    """The terms of a licence expression, each identified. ``link`` and ``text`` (a model card's
    ``license_link``, the LICENSE layer) describe a model's one licence, so they only help identify
    an expression of one term."""
    parts = _split_and(expression or "")
    if len(parts) == 1:
        return [Term(parts[0], identify(parts[0], link=link, text=text))]
    return [Term(p, identify(p)) for p in parts]


def combine(*expressions: str | None) -> str | None:
    """The expression of everything ``expressions`` name, each licence once (first spelling kept)."""
    seen: dict[str, str] = {}
    for expression in expressions:
        for term in terms(expression):
            seen.setdefault(term.key, term.text)
    return " AND ".join(seen.values()) or None


def describe(expression: str | None, *, link: str | None = None, text: str | None = None) -> dict[str, Any]:
    """What people and pages see of a licence expression: each term as the table knows it, and the
    whole: the strictest kind, whether it restricts use, every obligation and restriction (tagged
    with the licence that imposes it), the uses it forbids, the notices it requires."""
    found = terms(expression, link=link, text=text) if expression else []
    known = [t.licence for t in found if t.licence is not None]
    unknown = [t.text for t in found if t.licence is None]
    if not found:
        return {"name": None, "id": None, "kind": "unknown", "restricts_use": False, "commercial": None,
                "obligations": [], "restrictions": [], "forbids": [], "notices": [], "source": None, "terms": []}
    kinds = [lic.kind for lic in known]
    kind = max(kinds, key=KIND_ORDER.index) if kinds and not unknown else "unknown"
    single = known[0] if len(found) == 1 and known else None
    return {
        "name": expression, "id": single.id if single else (" AND ".join(lic.id for lic in known) if not unknown
                                                             else None),
        "title": single.name if single else None, "kind": kind,
        "restricts_use": any(lic.restricts_use for lic in known),
        "commercial": all(lic.commercial for lic in known) if not unknown else None,
        "obligations": [{"kind": o.kind, "text": o.text, "licence": lic.id} for lic in known for o in lic.obligations],
        "restrictions": [{"text": r, "licence": lic.id} for lic in known for r in lic.restrictions],
        "forbids": [{"use": u, "clause": c, "licence": lic.id} for lic in known for u, c in lic.forbids],
        "notices": [lic.notice for lic in known if lic.notice],
        "source": single.source if single else None,
        "terms": [{"text": t.text, "id": t.licence.id if t.licence else None,
                   "name": t.licence.name if t.licence else None,
                   "kind": t.licence.kind if t.licence else "unknown",
                   "source": t.licence.source if t.licence else None} for t in found],
        "unknown": unknown,
    }


def notice_text(expression: str | None) -> str | None:
    """The NOTICE file a derivative carries: each notice its licences word, once."""
    notices = list(dict.fromkeys(describe(expression)["notices"]))
    return "\n\n".join(notices) + "\n" if notices else None


def check_relabel(inherited: str | None, new: str, subject: str) -> str:
    """``new``, if a derivative may be labelled with it: it must keep every licence the derivative
    inherited (it may add terms). Raises LicenceError naming what the new label would drop, and why
    the dropped licence does not allow it. An inherited licence nobody stated may be stated now."""
    from freehold.errors import LicenceError

    new_keys = {t.key for t in terms(new)}
    dropped = [t for t in terms(inherited) if t.key not in new_keys and t.text != NOT_STATED]
    if dropped:
        term = dropped[0]
        why = "its terms go with every derivative"
        if term.licence is not None:
            binding = [o for o in term.licence.obligations if o.kind in ("pass-on-restrictions", "share-alike")]
            if binding:
                why = binding[0].text
            elif term.licence.restrictions:
                why = f"{term.licence.restrictions[0]}, and what is made from it stays bound by that"
            else:
                why = next((o.text for o in term.licence.obligations if o.kind == "notice"), why)
        keep = combine(inherited, new)
        raise LicenceError(
            f"{subject} comes under {inherited}; labelling it {new} would drop {term.text}"
            + (f" ({term.licence.name})" if term.licence else "") + f": {why}",
            f"leave out --license to keep what it inherited, or add to it: --license '{keep}'")
    return combine(new, inherited) or new


def naming_prefix(expression: str | None) -> str | None:
    """The word a derivative's name must begin with, where a licence says so (Llama 3.x §1b(i))."""
    for term in terms(expression):
        if term.licence and any(o.kind == "naming" for o in term.licence.obligations):
            return "Llama" if "llama" in term.licence.id else None
    return None


def derived_name(expression: str | None, name: str) -> str | None:
    """The alias a derivative named ``name`` also answers to so that its name begins as its
    licence requires (``llama-acme-support``), None when ``name`` already does or nothing requires it."""
    prefix = naming_prefix(expression)
    if prefix is None or name.lower().startswith(prefix.lower()):
        return None
    return f"{prefix.lower()}-{name}"


@dataclass(frozen=True)
class Inherited:
    """The licence a derivative comes under, worked out once when it is made (and kept in its
    manifest, its GGUF's ``general.license``, its ledger record and its card)."""

    expression: str | None
    sources: list[dict[str, Any]]  # {"kind": "model"|"dataset", "name", "digest", "licence"}
    alias: str | None = None  # the name its licence makes it answer to too (Llama's naming rule)

    def notice(self) -> str | None:
        return notice_text(self.expression)

    def apply_naming(self, store: Any, entry: Any) -> Any:
        """Give the new model ``entry`` the alias its licence requires (Llama's §1b(i)), if it has
        none yet; returns the entry as the store now names it."""
        if self.alias is None or store.has(self.alias):
            return entry
        store.add_alias(self.alias, entry.name)
        return store.get(entry.name)

    def layers(self, store: Any, parents: Sequence[Any]) -> list[Any]:
        """The text layers a derivative carries for its licences: each parent's licence text
        (once; the first model's first) and the NOTICE its licences require."""
        from freehold.store import MediaType

        texts = [store.text_layer(p.manifest, MediaType.LICENSE) for p in parents]
        out = [store.put_text(t, MediaType.LICENSE) for t in dict.fromkeys(t for t in texts if t)][:1]
        notice = self.notice()
        if notice:
            out.append(store.put_text(notice, MediaType.NOTICE))
        return out


def inherit(store: Any, name: str, *, models: Sequence[Any], datasets: Sequence[Any] = (),
            label: str | None = None) -> Inherited:
    """The licence of ``name``, a derivative of store ``models`` (a base, the models merged) trained on
    ``datasets``: every licence they come under, as one expression. ``label``: the licence the
    user asked for (``--license``), accepted only if it keeps every inherited term (check_relabel)."""
    from freehold.store import MediaType

    sources: list[dict[str, Any]] = []
    for entry in models:
        stated = model_licence(entry.manifest, store.text_layer(entry.manifest, MediaType.LICENSE))
        sources.append({"kind": "model", "name": entry.name, "digest": entry.manifest_digest,
                        "licence": stated or NOT_STATED})
    for entry in datasets:  # a dataset imported without --license is the user's own data: it adds none
        stated = (entry.manifest.config or {}).get("license")
        if stated:
            sources.append({"kind": "dataset", "name": entry.name, "digest": entry.manifest_digest,
                            "licence": str(stated)})
    stated_parts = [s["licence"] for s in sources if s["licence"] != NOT_STATED]
    expression = combine(*stated_parts, *([NOT_STATED] if len(stated_parts) < len(sources) and stated_parts else []))
    if label:
        expression = check_relabel(expression, label, name)
    bare = name.removesuffix(":latest").replace(":", "-")  # an alias has no tag: acme:q4_0 -> llama-acme-q4_0
    return Inherited(expression, sources, derived_name(expression, bare))
