"""The archive's elements, each declared once and registered under (encoding-type, encoding-version).

Modelled on anndata's IORegistry. An element (``/header``, ``/decoder``, one
encoding of ``/latents``, ``/images``, ``/quality``, ``/training``,
``/lossless``) is one module in `latentpack.formats.elements` holding one
`Element` subclass: its datasets and attributes as `Field` declarations
(name, dtype, shape rule, since which version, required or optional) plus
the checks only it knows. The reader, the writer, the content checks,
``stored_bits`` and `Archive.storage_breakdown` walk these declarations::

    @register
    class QualityElement(Element, encoding_type="quality", label="quality", reads=("1.0", "1.1", "1.2")):
        fields = (Field("psnr", np.float64, ("w",)), ...)
        def build(self, values, archive): return Quality(psnr=values["psnr"])

    elements()                    every element, in reading order
    lookup("latents", "1.1")      the layouts that read a group tagged so
    breakdown_parts()             (key, label) of the storage breakdown, in display order

A group's ``encoding-version`` is its element's own layout version: the
oldest version whose fields hold the value (`Element.version`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np

from latentpack.formats import layout

__all__ = [
    "STR",
    "BOOL",
    "Field",
    "Element",
    "Context",
    "register",
    "elements",
    "lookup",
    "element",
    "types",
    "newest_version",
    "breakdown_parts",
    "version_tuple",
    "version_text",
]

#: The dtype of a fixed-length UTF-8 string (one, or a list of them).
STR = layout.STR
#: The dtype of a boolean attribute.
BOOL = "bool"


def version_tuple(version: str) -> tuple[int, int]:
    """``"1.2"`` -> ``(1, 2)``."""
    major, minor = version.split(".")
    return int(major), int(minor)


def version_text(version: tuple[int, int]) -> str:
    """``(1, 2)`` -> ``"1.2"``."""
    return "{}.{}".format(*version)


@dataclass(frozen=True)
class Field:
    """One dataset or attribute of an element, declared once.

    Attributes:
        name: Its name in the group.
        dtype: A numpy dtype, `STR` or `BOOL`.
        shape: The shape rule: a tuple of ints, None (any length) and size
            names (``"w"``, or an attribute of the same element), or a
            callable taking those sizes; ``()`` for a scalar.
        attr: An attribute, not a dataset.
        since: The first version of the element's layout that has it.
        required: Whether every layout from `since` on has it.
        storage: How a dataset is stored (`latentpack.formats.h5write`).
        member: Dotted attribute path of its value on the element's
            in-memory value (default: `name`).
        const: A fixed value: written as is, refused when read otherwise.
        counted: Whether it counts in the element's stored bits (default:
            datasets do, attributes do not).
        too_new: ``"error"`` to refuse it in a layout older than `since`;
            ``"ignore"`` (default) to leave it unread there.
        derived: Written from a property of the value and checked when read,
            but not read back into the value (e.g. ``mean_psnr``).
        reshape: The shape a dataset's value is given before it is written
            (``(-1,)``: flattened), or None to keep its own.
        empty: The shape an empty value is given before it is written.
        bulk: A dataset that an archive opened ``lazy`` hands out unread, as a
            `latentpack.formats.lazy.LazyArray` (latent values, coded streams);
            its element's `Element.check_slice` checks each slice read.
    """

    name: str
    dtype: Any
    shape: Any = ()
    attr: bool = False
    since: str = "1.0"
    required: bool = True
    storage: str = "packed"
    member: str | None = None
    const: Any = None
    counted: bool | None = None
    too_new: str = "ignore"
    derived: bool = False
    reshape: tuple | None = None
    empty: tuple | None = None
    bulk: bool = False

    @property
    def key(self) -> str:
        """The dotted attribute path of the value."""
        return self.member or self.name

    @property
    def is_counted(self) -> bool:
        return (not self.attr) if self.counted is None else self.counted

    @property
    def bits(self) -> int:
        """Bits one stored scalar takes."""
        return 8 * np.dtype(self.dtype).itemsize

    def shape_for(self, sizes: Mapping[str, Any]) -> tuple:
        """The expected shape, size names resolved from `sizes`."""
        rule = self.shape(sizes) if callable(self.shape) else self.shape
        return tuple(sizes[d] if isinstance(d, str) else d for d in rule)

    def get(self, obj: Any) -> Any:
        """This field's value on an element's in-memory value (None when absent)."""
        if self.const is not None:
            return self.const
        for part in self.key.split("."):
            obj = getattr(obj, part, None)
        return obj


@dataclass
class Context:
    """What checking one element needs to know of the others.

    Attributes:
        w: Number of images.
        versions: Layout version of each element read or written, by encoding type.
        sizes: Named sizes for shape rules (``"w"``, ``"channels"``).
        spec: The validated decoder description, once known.
        header: The header, once known.
        latent_shapes: ``(w, 3)`` latent shapes, once known.
        bits: Stored bits of each element, by the `Header` attribute they go to.
        image_shapes: ``(w, 3)`` image shapes (``/images/shapes``), once known.
    """

    w: int
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    spec: Any = None
    header: Any = None
    latent_shapes: Any = None
    bits: dict[str, int | None] = field(default_factory=dict)
    image_shapes: Any = None


class Element:
    """An archive element's declaration; subclasses add what only they know.

    Class attributes:
        encoding_type: The group's name and ``encoding-type``.
        part: Its attribute on `ArchiveContents` (and key in the storage breakdown).
        label: What a person calls it (``"decoder weights"``).
        reads: The layout versions it reads.
        fields: Its datasets and attributes.
        variant: Value of the group's ``coding`` attribute selecting this
            layout when several share an encoding type (the latents).
        optional: The group may be absent.
        since: The first file version the group may appear in.
        display: Rank in the storage breakdown.
        header_bits: The `Header` attribute its stored bits are recorded in.
        summary: Checked after every other element (the header).
        replaces: Encoding types that are REQUIRED except in an archive with
            this element, and then MUST be absent (``/pixels`` replaces
            ``/decoder`` and ``/latents``).
        excludes: Encoding types that MUST NOT appear together with it.
    """

    encoding_type: ClassVar[str]
    part: ClassVar[str]
    label: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]
    fields: ClassVar[tuple[Field, ...]] = ()
    variant: ClassVar[str | None] = None
    optional: ClassVar[bool] = False
    since: ClassVar[str] = "1.0"
    display: ClassVar[int] = 0
    header_bits: ClassVar[str | None] = None
    summary: ClassVar[bool] = False
    replaces: ClassVar[tuple[str, ...]] = ()
    excludes: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **declared: Any) -> None:
        """Take the class attributes as keywords: ``class Quality(Element, encoding_type="quality", ...)``."""
        super().__init_subclass__()
        for name, value in declared.items():
            if not hasattr(Element, name) and name not in Element.__annotations__:
                raise TypeError(f"{cls.__name__}: unknown element declaration {name!r}")
            setattr(cls, name, value)
        if "encoding_type" in declared and "part" not in declared:
            cls.part = declared["encoding_type"]

    @property
    def path(self) -> str:
        return "/" + self.encoding_type

    # -- what the writer asks --------------------------------------------------

    def value(self, contents: Any) -> Any:
        """The element's in-memory value in `contents`."""
        return getattr(contents, self.part)

    def holds(self, contents: Any) -> bool:
        """Whether `contents` are written with this element."""
        return self.value(contents) is not None

    def present(self, obj: Any) -> list[Field]:
        """The fields `obj` has a value for."""
        return [f for f in self.fields if f.get(obj) is not None]

    def version(self, obj: Any) -> str:
        """The oldest layout that holds `obj`: the newest ``since`` of its fields."""
        return version_text(max(version_tuple(v) for v in (self.since, *(f.since for f in self.present(obj)))))

    def stored_bits(self, sizes: Mapping[str, int]) -> int | None:
        """Payload bits recorded in the header, from each counted field's number of scalars."""
        if self.header_bits is None:
            return None
        return sum(f.bits * int(sizes[f.name]) for f in self.fields if f.is_counted and f.name in sizes)

    def bits_of(self, obj: Any) -> int | None:
        """`stored_bits` of an in-memory value."""
        return self.stored_bits({f.name: np.size(f.get(obj)) for f in self.present(obj)})

    def archive_bits(self, archive: Any) -> int | None:
        """`stored_bits` of the element in an open archive, from its datasets' declared sizes."""
        sizes = {f.name: 1 for f in self.fields if f.attr and f.name in archive._attrs[self.encoding_type]}
        for f in self.fields:
            ds = archive._ds.get(f"{self.path}/{f.name}")
            if ds is not None:
                sizes[f.name] = int(np.prod(ds.shape))
        return self.stored_bits(sizes)

    def normalise(self, obj: Any) -> Any:
        """A copy of `obj` with every declared array in its on-disk dtype."""
        return layout.normalise(self, obj)

    def write(self, group: Any, obj: Any, options: Mapping[str, Any]) -> None:
        """Write `obj`'s fields into `group` as declared."""
        layout.write_fields(group, self, obj)

    # -- what the checks and the reader ask -------------------------------------

    def validate(self, obj: Any, ctx: Context) -> None:
        """Every rule on an in-memory value: scalars, declared dtypes and shapes, cross-field rules."""
        self.check_scalars(obj, ctx)
        sizes = {**ctx.sizes, **self.sizes_of(obj), "version": ctx.versions.get(self.encoding_type)}
        layout.expect_arrays(self, obj, sizes, self.path)
        self.check(obj, ctx)

    def sizes_of(self, obj: Any) -> dict[str, Any]:
        """Sizes its own attributes give its shape rules (see `Field.shape`)."""
        return {f.name: f.get(obj) for f in self.fields if f.attr}

    def check_scalars(self, obj: Any, ctx: Context) -> None:
        """Rules on its attributes, checked before its arrays' shapes."""

    def check(self, obj: Any, ctx: Context) -> None:
        """Rules across its fields and with the other elements (`ctx`)."""

    def opened_attrs(self, attrs: dict[str, Any], version: tuple[int, int]) -> None:
        """Rules on its attributes as read, before its datasets' shapes are checked from them."""

    def opened(self, archive: Any, attrs: dict[str, Any]) -> None:
        """After its layout passed: check what the reader needs before reading data (indexes)."""

    def check_slice(self, name: str, values: np.ndarray) -> None:
        """Rules on a slice of the bulk dataset `name` as a lazy archive reads it (what `check` does whole)."""

    def build(self, values: dict[str, Any], archive: Any) -> Any:
        """The in-memory value from what was read (`values` by field name)."""
        raise NotImplementedError(f"{type(self).__name__}.build")


_REGISTRY: dict[tuple[str, str], list[Element]] = {}
_ORDER: list[Element] = []


def register(cls: type[Element]) -> type[Element]:
    """Class decorator: register an element under (encoding type, version) for each version it reads."""
    el = cls()
    _ORDER.append(el)
    for version in cls.reads:
        _REGISTRY.setdefault((cls.encoding_type, version), []).append(el)
    return cls


def _load() -> None:
    import latentpack.formats.elements  # noqa: F401  (each module registers itself)


def elements() -> list[Element]:
    """Every registered element, in reading order (the order of `latentpack.formats.elements`)."""
    _load()
    return list(_ORDER)


def types() -> list[str]:
    """The encoding types (groups) of an archive, in reading order."""
    return list(dict.fromkeys(el.encoding_type for el in elements()))


def lookup(encoding_type: str, version: str) -> list[Element]:
    """The elements that read a group of `encoding_type` tagged `version` (empty when none)."""
    _load()
    return list(_REGISTRY.get((encoding_type, version), []))


def element(encoding_type: str, variant: str | None = None) -> Element:
    """The element of `encoding_type` (and `variant`, for the latents)."""
    for el in elements():
        if el.encoding_type == encoding_type and el.variant == variant:
            return el
    raise KeyError(f"no element {encoding_type!r} variant {variant!r}")


def newest_version(encoding_type: str) -> str:
    """The newest layout version of `encoding_type` this latentpack reads."""
    versions = [v for el in elements() if el.encoding_type == encoding_type for v in el.reads]
    return version_text(max(version_tuple(v) for v in versions))


def breakdown_parts() -> list[tuple[str, str]]:
    """``(key, label)`` of each element that holds datasets, in the storage breakdown's display order.

    These are the keys of `Archive.storage_breakdown` besides ``overhead``
    and ``file``, for a summary to label them.
    """
    seen: dict[str, tuple[int, str]] = {}
    for el in elements():
        if any(not f.attr for f in el.fields):
            seen.setdefault(el.part, (el.display, el.label))
    return [(key, label) for key, (_, label) in sorted(seen.items(), key=lambda item: item[1][0])]

