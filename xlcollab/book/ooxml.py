"""The one OOXML package layer: read a .xlsx/.xlsm's parts, edit some, and write the whole file atomically.

Every file xlcollab writes goes through `Package.save`: a temporary file beside the target, fsync, then
one `os.replace`, so the target is either the old file or the whole new one. Parts nobody touched are
streamed across unchanged (decompressed and recompressed by the zip module, which has no raw copy; never
all held in memory); `reproducible=True` gives every entry a fixed date and mode, so the same content is
the same bytes. `WorkbookMap` is the one reader of workbook.xml (sheets, their parts, defined names).
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
import tempfile
import time
import zipfile
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

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


def q(tag: str, ns: str = NS) -> str:
    """Clark notation "{namespace}tag" for lxml."""
    return f"{{{ns}}}{tag}"


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
        try:
            self._zip = zipfile.ZipFile(source)
        except (OSError, zipfile.BadZipFile) as exc:
            raise WorkbookError(f"cannot read the workbook ({exc})", path=self.name) from None
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
        return self._zip.read(part)

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
            try:
                self._trees[part] = etree.fromstring(self.read(part))
            except etree.XMLSyntaxError as exc:
                raise WorkbookError(f"corrupt workbook: {part} is not XML ({exc})", path=self.name) from None
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

    def workbook(self) -> WorkbookMap:
        """The sheets and defined names, from workbook.xml as it stands now."""
        parse = (lambda part: self._trees[part]) if WORKBOOK in self._trees else (lambda part: self._parse(part))
        return read_workbook_map(parse(WORKBOOK), self._trees.get(WORKBOOK_RELS) or self._parse(WORKBOOK_RELS))

    def _parse(self, part: str) -> etree._Element:
        try:
            return etree.fromstring(self.read(part))
        except etree.XMLSyntaxError as exc:
            raise WorkbookError(f"corrupt workbook: {part} is not XML ({exc})", path=self.name) from None

    def save(self, target: str | Path, *, reproducible: bool = False) -> Path:
        """Write every part into `target` atomically: a temporary file beside it, fsync, one rename.

        Parts keep their order and zip entry settings (new ones come last); `reproducible` gives every
        entry the fixed date, mode 644 and deflate, so equal content gives equal bytes.
        """
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                with zipfile.ZipFile(fh, "w") as out:
                    for info, data in self._entries(reproducible):
                        if data is None:
                            with self._zip.open(info.filename) as src, out.open(info, "w") as dst:
                                shutil.copyfileobj(src, dst, 1 << 20)
                        else:
                            out.writestr(info, data)
                fh.flush()
                os.fsync(fh.fileno())
            if target.exists() and not reproducible:
                shutil.copymode(target, tmp)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _sync_folder(target.parent)
        return target

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


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_AFTER_CALC_PR = {q(t) for t in ("oleSize", "customWorkbookViews", "pivotCaches", "smartTagPr", "smartTagTypes",
                                 "webPublishing", "fileRecoveryPr", "webPublishObjects", "extLst")}


def ask_full_recalc(xml: bytes) -> bytes:
    """workbook.xml with <calcPr fullCalcOnLoad="1"/>; returned unchanged when it already says so."""
    root = etree.fromstring(xml)
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
