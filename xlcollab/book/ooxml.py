"""The one OOXML package layer: read a .xlsx/.xlsm's parts, edit some, and write the whole file atomically.

Every workbook xlcollab writes goes through `Package.save`, which writes through `core.atomic.atomic_write`: a
temporary file beside the target (a symlink's target; a device, FIFO or folder refused), fsync, one
`os.replace`, under the target's advisory lock, so the target is either the old file or the whole new one.
Reading goes through `safeio.open_zip` (regular files only; every part's size checked from the zip
directory before anything is read) and `parse_xml` (no DTD, no entities, lxml's limits on huge text: each
refusal one line naming the part). Parts nobody touched are streamed across unchanged (decompressed and
recompressed by the zip module, which has no raw copy; never all held in memory); `reproducible=True` gives
every entry a fixed date and mode, so the same content is the same bytes. `WorkbookMap` is the one reader of
workbook.xml (sheets, their parts, defined names).
"""
from __future__ import annotations

import codecs
import io
import posixpath
import re
import shutil
import time
import zipfile
import zlib
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

from xlcollab.core import atomic, safeio
from xlcollab.errors import WorkbookError

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
XML_NS = "http://www.w3.org/XML/1998/namespace"
WORKSHEET_REL = f"{R_NS}/worksheet"
WORKSHEET_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
WORKBOOK = "xl/workbook.xml"
WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"
CONTENT_TYPES = "[Content_Types].xml"
#: the date every entry of a reproducible file carries (and the document dates the builds stamp)
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def workbook_error(path: str | Path) -> safeio.Kind:
    """How `core.safeio` reports a problem with the workbook file `path`: a WorkbookError naming it once."""
    return lambda message: WorkbookError(message.removeprefix(f"{path}: "), path=str(path))


def q(tag: str, ns: str = NS) -> str:
    """Clark notation "{namespace}tag" for lxml."""
    return f"{{{ns}}}{tag}"


#: every XML part is parsed so: no DTD loaded, no entity expanded, nothing fetched, lxml's caps on huge text kept
_PARSER_OPTIONS = dict(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, dtd_validation=False)
_PARSER = etree.XMLParser(**_PARSER_OPTIONS)


def parse_xml(data: bytes, *, part: str, path: str, sheet: str | None = None) -> etree._Element:
    """A part's XML tree; WorkbookError naming the part for malformed XML, a DTD or an entity (an OOXML part has none)."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise xml_error(part, exc, path=path, sheet=sheet) from None
    refuse_dtd(root.getroottree(), part=part, path=path, sheet=sheet)
    return root


def iterparse_xml(stream: IO[bytes], *, tag: Iterable[str] | str, part: str, path: str,
                  sheet: str | None = None) -> Iterable[etree._Element]:
    """Stream a part's elements of `tag` (end events) with `parse_xml`'s rules; the caller frees them as it goes."""
    checked = False
    try:
        for _, el in etree.iterparse(stream, events=("end",), tag=tag, **_PARSER_OPTIONS):
            if not checked:
                refuse_dtd(el.getroottree(), part=part, path=path, sheet=sheet)
                checked = True
            yield el
    except etree.XMLSyntaxError as exc:
        raise xml_error(part, exc, path=path, sheet=sheet) from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise WorkbookError(f"corrupt workbook: the part {part} cannot be unpacked ({exc})", sheet=sheet,
                            path=path) from None


_PROLOG_BYTES = 65536
_ROOT_START = re.compile(r"<[^?!]")


def declares_dtd(head: bytes) -> bool:
    """Whether an XML document beginning with `head` has a <!DOCTYPE> before its root element (or no root in
    `head` at all, which only a padded prolog hiding one would do)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = head.decode("utf-16", "replace")
    else:
        text = head.decode("utf-8", "replace")
    root = _ROOT_START.search(text)
    declared = "<!DOCTYPE" in (text if root is None else text[:root.start()]).upper()  # the prolog alone
    if root is None:
        return len(head) >= _PROLOG_BYTES or declared
    return declared


def refuse_dtd(tree: etree._ElementTree, *, part: str, path: str, sheet: str | None = None) -> None:
    """OOXML parts never declare a DTD: one found is refused (entity bombs and external entities live there)."""
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise WorkbookError(f"corrupt or hostile workbook: {part} declares a DTD (<!DOCTYPE>), which no workbook "
                            "part has; refused", sheet=sheet, path=path)


def xml_error(part: str, exc: etree.XMLSyntaxError, *, path: str, sheet: str | None = None) -> WorkbookError:
    """One line for a part lxml refused: malformed, truncated, an undefined entity, a text node over lxml's limit."""
    first = next(iter(exc.error_log), None)  # the cause; lxml's own message may be a later, misleading error
    reason = f"{first.message}, line {first.line}, column {first.column}" if first is not None else \
        (str(exc).splitlines() or [type(exc).__name__])[0]
    return WorkbookError(f"corrupt workbook: {part} is not well-formed XML ({reason})", sheet=sheet, path=path)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")


def cell_text(text: str) -> str:
    """Text as a cell stores it in OOXML: characters XML 1.0 cannot hold (an escape sequence's ESC, a BEL) written
    as _xHHHH_, which Excel and LibreOffice read back as the character (a literal "_x0041_" keeps its underscore
    as _x005F_, as the standard says)."""
    return _NOT_XML.sub(lambda m: f"_x{ord(m[0]):04X}_", text)


def xml_bytes(root: etree._Element) -> bytes:
    """A part's bytes as every writer here serializes it."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def rels_of(part: str) -> str:
    """"xl/worksheets/_rels/sheet1.xml.rels" for "xl/worksheets/sheet1.xml"."""
    folder, name = part.rsplit("/", 1)
    return f"{folder}/_rels/{name}.rels"


def resolve(source_part: str, target: str) -> str:
    """The part a relationship of `source_part` points at ("../charts/chart1.xml" from a drawing)."""
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(source_part), target))


def free_name(taken: Container[str], pattern: str, start: int = 1) -> str:
    """The first of pattern.format(start), pattern.format(start + 1), ... not in `taken`."""
    i = start
    while pattern.format(i) in taken:
        i += 1
    return pattern.format(i)


def add_relationship(rels: etree._Element, kind: str, target: str) -> str:
    """Append a relationship to a .rels tree under a free rId; returns that id."""
    rid = free_name({r.get("Id") for r in rels}, "rId{}")
    etree.SubElement(rels, q("Relationship", PKG_NS), Id=rid, Type=kind, Target=target)
    return rid


def add_override(types: etree._Element, part: str, content_type: str) -> None:
    """Declare a part's content type in [Content_Types].xml."""
    etree.SubElement(types, q("Override", CT_NS), PartName="/" + part, ContentType=content_type)


@dataclass
class WorkbookMap:
    """What workbook.xml and its rels say: the sheets in order, each one's part, the defined names."""

    order: list[str]                                     # every sheet, worksheets and chart sheets, tab order
    parts: dict[str, str]                                # sheet name -> its part ("xl/worksheets/sheet1.xml")
    local_names: dict[str, dict[str, str]] = field(default_factory=dict)   # sheet -> {name: text}
    global_names: dict[str, str] = field(default_factory=dict)             # workbook-scoped {name: text}

    def worksheets(self) -> list[str]:
        """The sheets that hold cells (chart sheets and dialog sheets have none), in tab order."""
        return [s for s in self.order if "/worksheets/" in self.parts.get(s, "")]


def read_workbook_map(workbook: etree._Element, rels: etree._Element) -> WorkbookMap:
    """Map a parsed workbook.xml and its rels."""
    targets = {r.get("Id"): r.get("Target") or "" for r in rels.iter(q("Relationship", PKG_NS))}
    order, parts = [], {}
    for sheet in workbook.iter(q("sheet")):
        name = sheet.get("name")
        order.append(name)
        parts[name] = resolve(WORKBOOK, targets.get(sheet.get(q("id", R_NS)), ""))
    book = WorkbookMap(order, parts, {name: {} for name in order})
    for dn in workbook.iter(q("definedName")):
        local = dn.get("localSheetId")
        if local is None:
            book.global_names[dn.get("name")] = dn.text or ""
        elif int(local) < len(order):
            book.local_names[order[int(local)]][dn.get("name")] = dn.text or ""
    return book


class Package:
    """An open .xlsx/.xlsm: parts read on demand, edits (bytes or lxml trees) kept until `save`."""

    def __init__(self, source: str | Path | IO[bytes], *, name: str | None = None) -> None:
        self.name = name or str(source)
        self._zip = safeio.open_zip(source, name=self.name, kind=lambda m: WorkbookError(
            f"cannot read the workbook: {m.removeprefix(f'{self.name}: ')}", path=self.name))
        self._known = set(self._zip.namelist())
        self._data: dict[str, bytes] = {}
        self._trees: dict[str, etree._Element] = {}
        self._dropped: set[str] = set()

    def __enter__(self) -> "Package":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def __contains__(self, part: object) -> bool:
        return part not in self._dropped and (part in self._known or part in self._data or part in self._trees)

    def read(self, part: str) -> bytes:
        """A part's current bytes."""
        if part in self._trees:
            return xml_bytes(self._trees[part])
        if part in self._data:
            return self._data[part]
        if part not in self:
            raise WorkbookError(f"corrupt workbook: the part {part} is missing", path=self.name)
        try:
            return self._zip.read(part)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise WorkbookError(f"corrupt workbook: the part {part} cannot be unpacked ({exc})", path=self.name) from None

    def open(self, part: str) -> IO[bytes]:
        """A part as a stream (untouched parts are not read whole)."""
        if part in self._data or part in self._trees:
            return io.BytesIO(self.read(part))
        if part not in self:
            raise WorkbookError(f"corrupt workbook: the part {part} is missing", path=self.name)
        return self._zip.open(part)

    def tree(self, part: str) -> etree._Element:
        """A part parsed for editing; what the tree holds at `save` is written."""
        if part not in self._trees:
            self._trees[part] = self._parse(part)
            self._data.pop(part, None)
        return self._trees[part]

    def put_tree(self, part: str, root: etree._Element) -> None:
        """Set (or add) a part as an XML tree."""
        self._data.pop(part, None)
        self._dropped.discard(part)
        self._trees[part] = root

    def set(self, part: str, data: bytes) -> None:
        """Set (or add) a part's bytes."""
        self._trees.pop(part, None)
        self._dropped.discard(part)
        self._data[part] = data

    def drop(self, part: str) -> None:
        """Leave a part out of the saved file."""
        self._data.pop(part, None)
        self._trees.pop(part, None)
        self._dropped.add(part)

    def directory(self) -> dict[str, tuple[int, int]]:
        """Each part of the file as opened: name -> (CRC-32, size), from the zip directory (nothing unpacked)."""
        return {info.filename: (info.CRC, info.file_size) for info in self._zip.infolist()}

    def check_parts(self) -> None:
        """Stream every part once (one pass, not one per check): a part whose bytes fail their checksum or do not
        unpack, or an XML part that declares a DTD in its first 64 KB, is refused, naming it."""
        for info in self._zip.infolist():
            part = info.filename
            try:
                with self._zip.open(info) as stream:
                    head = stream.read(_PROLOG_BYTES)
                    while stream.read(1 << 20):  # to the end: the zip module checks the CRC-32 there
                        pass
            except zipfile.BadZipFile:
                raise WorkbookError(f"corrupt workbook: part {part} fails its checksum", path=self.name) from None
            except (zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
                raise WorkbookError(f"corrupt workbook ({exc})", path=self.name) from None
            if part.endswith((".xml", ".rels", ".vml")) and declares_dtd(head):
                raise WorkbookError(f"corrupt or hostile workbook: {part} declares a DTD (<!DOCTYPE>), which no "
                                    "workbook part has; refused", path=self.name)

    def workbook(self) -> WorkbookMap:
        """The sheets and defined names, from workbook.xml as it stands now."""
        parse = (lambda part: self._trees[part]) if WORKBOOK in self._trees else (lambda part: self._parse(part))
        return read_workbook_map(parse(WORKBOOK), self._trees.get(WORKBOOK_RELS) or self._parse(WORKBOOK_RELS))

    def _parse(self, part: str) -> etree._Element:
        return parse_xml(self.read(part), part=part, path=self.name)

    def save(self, target: str | Path, *, reproducible: bool = False) -> Path:
        """Write every part into `target` atomically (`atomic.atomic_write`); returns the file written.

        Parts keep their order and zip entry settings (new ones come last); `reproducible` gives every
        entry the fixed date, mode 644 and deflate, so equal content gives equal bytes. A failure (disk
        full, a part that does not unpack) is one WorkbookError line, the target untouched.
        """
        with atomic.atomic_write(target, kind=workbook_error(target), what="workbook file",
                                 keep_mode=not reproducible) as fh:
            with zipfile.ZipFile(fh, "w") as out:
                for info, data in self._entries(reproducible):
                    if data is not None:
                        out.writestr(info, data)
                        continue
                    try:
                        with self._zip.open(info.filename) as src, out.open(info, "w") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                        raise WorkbookError(f"corrupt workbook: the part {info.filename} cannot be unpacked ({exc}); "
                                            "nothing was written", path=self.name) from None
        return Path(target)

    def _entries(self, reproducible: bool) -> Iterable[tuple[zipfile.ZipInfo, bytes | None]]:
        """(entry, bytes) for each part in order; bytes None for an untouched part (streamed)."""
        seen = set()
        for info in self._zip.infolist():
            if info.filename in self._dropped or info.filename in seen:
                continue
            seen.add(info.filename)
            edited = info.filename in self._data or info.filename in self._trees
            yield _entry(info.filename, info, reproducible), self.read(info.filename) if edited else None
        for part in [*self._data, *self._trees]:
            if part not in seen:
                seen.add(part)
                yield _entry(part, None, reproducible), self.read(part)


def _entry(name: str, like: zipfile.ZipInfo | None, reproducible: bool) -> zipfile.ZipInfo:
    """A zip entry for `name`: the source entry's settings, a new one's (now, deflate, 644), or the fixed ones."""
    if reproducible or like is None:
        info = zipfile.ZipInfo(name, date_time=FIXED_TIME if reproducible else time.localtime()[:6])
        info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
    else:
        info = zipfile.ZipInfo(name, date_time=like.date_time)
        info.compress_type, info.external_attr = like.compress_type, like.external_attr
        info.create_system, info.comment = like.create_system, like.comment
    info.file_size = like.file_size if like is not None else 0  # sizes the zip64 decision of a streamed copy
    return info


_AFTER_CALC_PR = {q(t) for t in ("oleSize", "customWorkbookViews", "pivotCaches", "smartTagPr", "smartTagTypes",
                                 "webPublishing", "fileRecoveryPr", "webPublishObjects", "extLst")}


def ask_full_recalc(xml: bytes) -> bytes:
    """workbook.xml with <calcPr fullCalcOnLoad="1"/>; returned unchanged when it already says so."""
    root = parse_xml(xml, part=WORKBOOK, path="the workbook")
    calc = root.find(q("calcPr"))
    if calc is not None and calc.get("fullCalcOnLoad") in ("1", "true"):
        return xml
    if calc is None:
        calc = etree.Element(q("calcPr"), calcId="191029")
        anchor = next((e for e in root if e.tag in _AFTER_CALC_PR), None)
        if anchor is None:
            root.append(calc)
        else:
            anchor.addprevious(calc)
    calc.set("fullCalcOnLoad", "1")
    return xml_bytes(root)
