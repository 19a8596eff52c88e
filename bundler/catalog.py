"""Control catalogs: the built-in one (our own words) and user OSCAL catalogs or resolved profiles.

The built-in catalog (``bundler/data/controls.json``) holds the NIST SP 800-53 Rev5
controls fedledger's evidence speaks to, with statements paraphrased in the
project's own words, the FedRAMP 20x Key Security Indicators (KSIs) that name them,
and which of them each baseline (``low``, ``moderate``, ``high``, ``ksi``) selects.
It is shipped as package data; nothing here reads ``../shared`` at run time.

:func:`load_oscal_catalog` reads an OSCAL 1.x *catalog* JSON document; a resolved
profile (for example the FedRAMP Rev5 Moderate baseline resolved catalog) is such a
document. Titles, statements (prose with parameter values substituted) and
parameters then come from it; KSI links still come from the built-in table, which
holds every KSI of the FedRAMP Consolidated Rules with the exact control and
enhancement ids it names (``ksi_control_links``), so an enhancement such as AC-2(1)
that only a user's catalog holds shows its KSIs too (:meth:`Catalog.ksi_links`).
Unresolved profiles (``{"profile": …}``) are refused with a usage error: resolving
imports needs the source catalogs, which this tool does not fetch.

What is not checked: the OSCAL document is not validated against NIST's schema; it
is read leniently (missing titles or parts degrade to empty text) but must be JSON
with a ``catalog`` object.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from collector.errors import MalformedInput, UsageError

BUILTIN_NAME = "fedledger built-in catalog"
BASELINES = ("low", "moderate", "high", "ksi")
_INSERT = re.compile(r"\{\{\s*insert:\s*param,\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_CONTROL_ID = re.compile(r"^([a-z]{2})-(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class CatalogControl:
    """One control as the report shows it."""

    id: str  # OSCAL style: "au-9", "ac-2.4"
    label: str  # "AU-9", "AC-2(4)"
    title: str
    family: str  # "AU"
    statement: str
    parameters: tuple[tuple[str, str], ...] = ()
    ksi: tuple[str, ...] = ()
    ksi_via_enhancements: tuple[str, ...] = ()
    withdrawn: bool = False


@dataclass(frozen=True)
class KeySecurityIndicator:
    id: str  # "KSI-MLA-OSM"
    name: str
    summary: str
    controls: tuple[str, ...]
    controls_via_enhancements: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """Controls by id (in catalog order), KSIs, and the built-in baseline lists."""

    name: str
    source: str  # "built-in" or the path of the OSCAL file
    controls: Mapping[str, CatalogControl]
    ksi: Mapping[str, KeySecurityIndicator] = field(default_factory=dict)
    baselines: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ksi_cadence_days: int = 7
    is_builtin: bool = True
    # normalized control id -> KSIs whose controls list names that exact id (every KSI of the rules)
    ksi_by_control: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def ksi_links(self, control_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(KSIs naming *control_id* itself, KSIs naming only enhancements of it), each sorted.

        Any form of the id works (``AC-2(1)``, ``ac-2.1``). An enhancement has no enhancements,
        so its second tuple is empty; a base control's second tuple holds the KSIs that name
        one of its enhancements (``ac-2.1``) but not the control itself.
        """
        cid = normalize_control_id(control_id)
        direct = tuple(sorted(self.ksi_by_control.get(cid, ())))
        prefix = cid + "."
        via = {k for other, ksis in self.ksi_by_control.items() if other.startswith(prefix) for k in ksis}
        return direct, tuple(sorted(via - set(direct)))

    def ksi_of(self, control_id: str) -> tuple[str, ...]:
        """Every KSI linked to *control_id*: those naming it, then those naming only an enhancement of it."""
        direct, via = self.ksi_links(control_id)
        return direct + via

    def control(self, control_id: str) -> CatalogControl:
        """The control *control_id* (any case, ``AC-2(4)`` or ``ac-2.4``); KeyError if absent."""
        return self.controls[normalize_control_id(control_id)]

    def __contains__(self, control_id: object) -> bool:
        return isinstance(control_id, str) and normalize_control_id(control_id) in self.controls


def normalize_control_id(text: str) -> str:
    """``AU-9`` → ``au-9``, ``AC-2(4)`` → ``ac-2.4``, ``AU-09`` → ``au-9``."""
    value = text.strip().lower().replace("(", ".").replace(")", "")
    match = re.match(r"^([a-z]{2})-0*(\d+)(?:\.0*(\d+))?$", value)
    if not match:
        return value
    family, number, enhancement = match.groups()
    return f"{family}-{number}" + (f".{enhancement}" if enhancement else "")


def control_label(control_id: str) -> str:
    """``ac-2.4`` → ``AC-2(4)``."""
    match = _CONTROL_ID.match(control_id)
    if not match:
        return control_id.upper()
    family, number, enhancement = match.groups()
    return f"{family.upper()}-{number}" + (f"({enhancement})" if enhancement else "")


def control_sort_key(control_id: str) -> tuple[str, int, int, str]:
    match = _CONTROL_ID.match(control_id)
    if not match:
        return (control_id, 0, 0, control_id)
    family, number, enhancement = match.groups()
    return (family, int(number), int(enhancement or 0), control_id)


# -- built-in ------------------------------------------------------------------------------


def _read_package_json(name: str) -> Any:
    text = resources.files("bundler").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def known_ksi_ids() -> frozenset[str]:
    """Every KSI id of the FedRAMP Consolidated Rules the built-in table was made from (upper case)."""
    doc = _read_package_json("controls.json")
    indicators = doc.get("ksi_control_links", {}).get("indicators")
    if not isinstance(indicators, dict):
        raise MalformedInput("bundler/data/controls.json has no ksi_control_links table")
    return frozenset(str(k).upper() for k in (*indicators, *doc.get("ksi", {})))


def load_mapping() -> dict[str, Any]:
    """The evidence-kind/check → controls mapping shipped as ``bundler/data/mapping.json``."""
    doc = _read_package_json("mapping.json")
    if doc.get("format") != "fedledger-mapping/1":
        raise MalformedInput("bundler/data/mapping.json has an unknown format")
    return dict(doc)


def load_builtin_catalog() -> Catalog:
    """The built-in catalog from package data."""
    doc = _read_package_json("controls.json")
    if doc.get("format") != "fedledger-controls/1":
        raise MalformedInput("bundler/data/controls.json has an unknown format")
    controls: dict[str, CatalogControl] = {}
    for cid in sorted(doc["controls"], key=control_sort_key):
        item = doc["controls"][cid]
        controls[cid] = CatalogControl(
            id=cid,
            label=item["label"],
            title=item["title"],
            family=item["family"],
            statement=item["statement"],
            ksi=tuple(item.get("ksi", ())),
            ksi_via_enhancements=tuple(item.get("ksi_via_enhancements", ())),
        )
    ksi = {
        kid: KeySecurityIndicator(
            kid, k["name"], k["summary"], tuple(k["controls"]), tuple(k.get("controls_via_enhancements", ()))
        )
        for kid, k in sorted(doc["ksi"].items())
    }
    baselines = {name: tuple(ids) for name, ids in doc["baselines"].items()}
    return Catalog(BUILTIN_NAME, "built-in", controls, ksi, baselines, int(doc.get("ksi_cadence_days", 7)), True,
                   _ksi_by_control(doc))


def _ksi_by_control(doc: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``ksi_control_links`` turned around: normalized control id -> the KSIs naming it."""
    links = doc.get("ksi_control_links")
    if not isinstance(links, dict) or not isinstance(links.get("indicators"), dict):
        raise MalformedInput("bundler/data/controls.json has no ksi_control_links table")
    by_control: dict[str, list[str]] = {}
    for ksi_id, control_ids in sorted(links["indicators"].items()):
        for cid in control_ids:
            by_control.setdefault(normalize_control_id(cid), []).append(ksi_id)
    return {cid: tuple(ksis) for cid, ksis in by_control.items()}


# -- OSCAL ---------------------------------------------------------------------------------


def load_oscal_catalog(path: Path | str, *, builtin: Catalog | None = None) -> Catalog:
    """Read an OSCAL catalog or resolved-profile JSON file.

    Every control and enhancement in it becomes a :class:`CatalogControl` with its
    statement rendered as text (labels kept, ``{{ insert: param, … }}`` replaced by
    the parameter's value, else its constraint, choices or ``[Assignment: label]``).
    KSI links and the built-in baseline lists are carried over from *builtin*.
    Raises :class:`UsageError` for an unresolved profile, :class:`MalformedInput`
    for anything that is not an OSCAL catalog.
    """
    path = Path(path)
    builtin = builtin or load_builtin_catalog()
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read catalog: {exc.strerror}", location=str(path)) from None
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"catalog is not JSON: {exc}", location=str(path)) from None
    if isinstance(doc, dict) and "profile" in doc and "catalog" not in doc:
        raise UsageError(
            "this is an unresolved OSCAL profile; give its resolved catalog (e.g. *-resolved-profile_catalog.json)",
            location=str(path),
        )
    if not isinstance(doc, dict) or not isinstance(doc.get("catalog"), dict):
        raise MalformedInput("not an OSCAL catalog: no top-level 'catalog' object", location=str(path))
    catalog = doc["catalog"]
    title = str(catalog.get("metadata", {}).get("title") or path.name)
    controls: dict[str, CatalogControl] = {}
    for control, family in _walk_controls(catalog):
        given = str(control.get("id", "")).strip()
        if not given:
            continue
        # One id form throughout (ac-2.1, whatever the file wrote: AC-2.1, ac-02.01), so lookups by
        # AC-2(1), the built-in entries and the KSI table all find it.
        cid = normalize_control_id(given)
        if cid in controls:
            raise MalformedInput(f"control {cid} ({control_label(cid)}) appears more than once in the catalog "
                                 f"(again as id {given!r}); each control may be defined once", location=str(path))
        params = _collect_params(control)
        known = builtin.controls.get(cid)
        ksi, ksi_via_enhancements = builtin.ksi_links(cid)
        controls[cid] = CatalogControl(
            id=cid,
            label=_label(control) or control_label(cid),
            title=str(control.get("title") or (known.title if known else "")),
            family=family,
            statement=_render_statement(control, params),
            parameters=tuple((pid, _param_text(pid, params)) for pid in params),
            ksi=ksi,
            ksi_via_enhancements=ksi_via_enhancements,
            withdrawn=_is_withdrawn(control),
        )
    if not controls:
        raise MalformedInput("OSCAL catalog holds no controls", location=str(path))
    controls = {cid: controls[cid] for cid in sorted(controls, key=control_sort_key)}
    return Catalog(title, str(path), controls, builtin.ksi, builtin.baselines, builtin.ksi_cadence_days, False,
                   builtin.ksi_by_control)


def _walk_controls(catalog: Mapping[str, Any]) -> Iterable[tuple[Mapping[str, Any], str]]:
    def walk(items: Sequence[Any], family: str) -> Iterable[tuple[Mapping[str, Any], str]]:
        for item in items or ():
            if not isinstance(item, dict):
                continue
            fam = family or str(item.get("id", "")).split("-")[0].upper()
            yield item, fam
            yield from walk(item.get("controls", ()), fam)

    for group in catalog.get("groups", ()) or ():
        if isinstance(group, dict):
            yield from walk(group.get("controls", ()), str(group.get("id", "")).upper())
            for sub in group.get("groups", ()) or ():
                if isinstance(sub, dict):
                    yield from walk(sub.get("controls", ()), str(group.get("id", "")).upper())
    yield from walk(catalog.get("controls", ()), "")


def _label(item: Mapping[str, Any]) -> str | None:
    labels = [p for p in item.get("props", ()) if isinstance(p, dict) and p.get("name") == "label"]
    plain = [p for p in labels if not p.get("class")]
    chosen = plain or labels
    return str(chosen[0]["value"]) if chosen else None


def _is_withdrawn(item: Mapping[str, Any]) -> bool:
    return any(
        isinstance(p, dict) and p.get("name") == "status" and str(p.get("value")).lower() == "withdrawn"
        for p in item.get("props", ())
    )


def _collect_params(control: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Parameters of the control and its parts (enhancements keep their own)."""
    params: dict[str, Mapping[str, Any]] = {}
    for param in control.get("params", ()) or ():
        if isinstance(param, dict) and param.get("id"):
            params[str(param["id"])] = param
    return params


def _param_text(pid: str, params: Mapping[str, Mapping[str, Any]], depth: int = 0) -> str:
    param = params.get(pid)
    if param is None or depth > 5:
        return f"[Assignment: {pid}]"
    values = [str(v) for v in param.get("values", ()) or () if v is not None]
    if values:
        return _substitute(", ".join(values), params, depth + 1)
    constraints = [str(c.get("description")) for c in param.get("constraints", ()) or ()
                   if isinstance(c, dict) and c.get("description")]
    if constraints:
        return _substitute("; ".join(constraints), params, depth + 1)
    select = param.get("select")
    if isinstance(select, dict) and select.get("choice"):
        choices = [_substitute(str(c), params, depth + 1) for c in select["choice"]]
        how = "one or more of" if select.get("how-many") == "one-or-more" else "one of"
        return f"[Selection ({how}): {'; '.join(choices)}]"
    label = param.get("label")
    return f"[Assignment: {label}]" if label else f"[Assignment: {pid}]"


def _substitute(text: str, params: Mapping[str, Mapping[str, Any]], depth: int = 0) -> str:
    return _INSERT.sub(lambda m: _param_text(m.group(1), params, depth), text)


def _render_statement(control: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]) -> str:
    lines: list[str] = []

    def render(part: Mapping[str, Any], depth: int) -> None:
        label = _label(part)
        prose = _substitute(str(part.get("prose") or ""), params).strip()
        title = str(part.get("title") or "").strip()
        text = " ".join(x for x in (label, title if not prose else "", prose) if x)
        if text:
            lines.append("  " * depth + text)
        for sub in part.get("parts", ()) or ():
            if isinstance(sub, dict) and sub.get("name") in ("item", "statement", "guidance"):
                render(sub, depth + (1 if text else 0))

    for part in control.get("parts", ()) or ():
        if isinstance(part, dict) and part.get("name") == "statement":
            render(part, 0)
    return "\n".join(lines)


# -- selection -----------------------------------------------------------------------------


def select_controls(
    catalog: Catalog, *, baseline: str | None = None, controls: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The control ids to assess, in catalog order.

    * ``controls`` given: exactly those (any case; ``AC-2(4)`` or ``ac-2.4``); an id that is
      neither in *catalog* nor built in is a usage error.
    * ``baseline`` one of ``low``/``moderate``/``high``/``ksi``: the built-in list of which
      fedledger controls that baseline includes.
    * ``baseline`` ``"catalog"``, or no baseline with a user OSCAL catalog: every control of
      that catalog that is not withdrawn (those with no mapped evidence are then reported
      as not assessed, never satisfied).
    * nothing given with the built-in catalog: all built-in controls.
    """
    if controls:
        wanted = [normalize_control_id(c) for c in controls if c.strip()]
        builtin_ids = catalog.controls if catalog.is_builtin else load_builtin_catalog().controls
        unknown = [c for c in wanted if c not in catalog.controls and c not in builtin_ids]
        if unknown:
            raise UsageError(f"unknown control id(s): {', '.join(control_label(c) for c in unknown)}")
        return tuple(dict.fromkeys(sorted(wanted, key=control_sort_key)))
    if baseline is not None:
        name = baseline.strip().lower()
        if name in BASELINES:
            return tuple(sorted(catalog.baselines[name], key=control_sort_key))
        if name in ("catalog", "custom"):
            return tuple(c.id for c in catalog.controls.values() if not c.withdrawn)
        raise UsageError(f"unknown baseline {baseline!r}: use one of {', '.join(BASELINES)} or 'catalog'")
    return tuple(c.id for c in catalog.controls.values() if not c.withdrawn)
