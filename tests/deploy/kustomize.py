"""Enough of kustomize to render deploy/k8s in a test: no kustomize binary installs here from PyPI or Debian.

It renders what deploy/k8s uses and refuses anything else (a kustomization field it does not know is an
error, never skipped): ``resources`` (files, or directories with a kustomization.yaml), ``components``,
``patches`` (strategic-merge patches from files, matched by kind and name), ``namespace`` and ``images``.
Strategic merge, as far as these patches need it: maps merge key by key, ``null`` deletes a key, lists
of maps that each have a ``name`` merge by name, any other list replaces the old one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

FIELDS = {"apiVersion", "kind", "resources", "components", "patches", "namespace", "images"}
CLUSTER_SCOPED = {"Namespace"}
_KINDS = {"Kustomization": "kustomize.config.k8s.io/v1beta1", "Component": "kustomize.config.k8s.io/v1alpha1"}


def load_documents(path: Path) -> list[Object]:
    """The YAML documents of a file, empty ones left out."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Object]:
    """The objects ``kubectl apply -k directory`` would apply."""
    return render_kustomization(_kustomization(directory, "Kustomization"), directory)


def render_kustomization(kustomization: Object, directory: Path) -> list[Object]:
    """The objects of ``kustomization``, whose relative paths are relative to ``directory``."""
    _check(kustomization, "Kustomization")
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else load_documents(path)
    for entry in kustomization.get("components", []):
        objects = _apply_component(directory / entry, objects)
    objects = _transform(kustomization, directory, objects)
    _unique(objects)
    return objects


def identity(obj: Object) -> tuple[str, str]:
    """(kind, name): how a patch names the object it changes."""
    return obj["kind"], obj["metadata"]["name"]


def strategic_merge(old: Any, patch: Any) -> Any:
    """``patch`` merged into ``old`` (see the module docstring for the rules); neither is changed."""
    if isinstance(old, dict) and isinstance(patch, dict):
        merged = dict(old)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(old.get(key), value)
        return merged
    if isinstance(old, list) and isinstance(patch, list) and _named(old) and _named(patch):
        by_name = {item["name"]: item for item in old}
        for item in patch:
            by_name[item["name"]] = strategic_merge(by_name.get(item["name"]), item)
        return list(by_name.values())
    return patch


def containers(obj: Object) -> list[Object]:
    """The containers and init containers anywhere in ``obj`` (a pod template, a Job's, ...)."""
    found: list[Object] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"containers", "initContainers"} and isinstance(value, list):
                    found.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return found


def _kustomization(directory: Path, kind: str) -> Object:
    loaded: Object = yaml.safe_load((directory / "kustomization.yaml").read_text())
    _check(loaded, kind)
    return loaded


def _check(kustomization: Object, kind: str) -> None:
    unknown = set(kustomization) - FIELDS
    if unknown:
        raise ValueError(f"this renderer does not do {sorted(unknown)}: render with kustomize, or extend it")
    if kustomization.get("kind", "Kustomization") != kind:
        raise ValueError(f"expected a {kind}, found a {kustomization.get('kind')}")
    api_version = kustomization.get("apiVersion", _KINDS[kind])
    if api_version != _KINDS[kind]:
        raise ValueError(f"a {kind} is {_KINDS[kind]}, not {api_version}")


def _apply_component(directory: Path, objects: list[Object]) -> list[Object]:
    component = _kustomization(directory, "Component")
    for entry in component.get("resources", []):
        objects = objects + load_documents(directory / entry)
    return _transform(component, directory, objects)


def _transform(kustomization: Object, directory: Path, objects: list[Object]) -> list[Object]:
    for entry in kustomization.get("patches", []):
        if set(entry) != {"path"}:
            raise ValueError(f"only patches from a file are rendered here, not {entry}")
        for patch in load_documents(directory / entry["path"]):
            objects = _patch(objects, patch)
    if namespace := kustomization.get("namespace"):
        objects = [_in_namespace(obj, namespace) for obj in objects]
    for image in kustomization.get("images", []):
        objects = [_with_image(obj, image) for obj in objects]
    return objects


def _patch(objects: list[Object], patch: Object) -> list[Object]:
    matches = [i for i, obj in enumerate(objects) if identity(obj) == identity(patch)]
    if len(matches) != 1:
        raise ValueError(f"a patch of {identity(patch)} matches {len(matches)} objects, not one")
    (i,) = matches
    return [*objects[:i], strategic_merge(objects[i], patch), *objects[i + 1 :]]


def _in_namespace(obj: Object, namespace: str) -> Object:
    if obj["kind"] in CLUSTER_SCOPED:
        return obj
    return strategic_merge(obj, {"metadata": {"namespace": namespace}})


def _with_image(obj: Object, image: Object) -> Object:
    if set(image) - {"name", "newName", "newTag"}:
        raise ValueError(f"only name, newName and newTag are rendered here, not {image}")
    renamed = yaml.safe_load(yaml.safe_dump(obj))  # a copy the loop below may change
    for container in containers(renamed):
        if image_name(container["image"]) == image["name"]:
            new = image.get("newName", image["name"])
            container["image"] = f"{new}:{image['newTag']}" if "newTag" in image else new
    return renamed


def image_name(reference: str) -> str:
    """An image reference without its tag or digest: what kustomize's ``images`` match on."""
    reference = reference.split("@", 1)[0]
    head, _, last = reference.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _unique(objects: list[Object]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in seen:
            raise ValueError(f"{key} is defined twice")
        seen.add(key)
