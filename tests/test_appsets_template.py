"""{{param}} templating (gitops.appsets.template) and generate()'s use of it."""

from __future__ import annotations

from typing import Any

import pytest

from gitops.appsets.generate import OWNER_ANNOTATION, generate
from gitops.appsets.spec import ApplicationSet
from gitops.appsets.template import flatten, render, render_string
from gitops.errors import InputError


def _set(template: dict[str, Any], elements: list[dict[str, Any]], name: str = "fleet") -> ApplicationSet:
    return ApplicationSet.model_validate({
        "apiVersion": "gitops.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": "ops"},
        "spec": {"generators": [{"list": {"elements": elements}}], "template": template},
    })


TEMPLATE: dict[str, Any] = {
    "metadata": {"name": "{{app}}-{{ cluster.name }}", "labels": {"env": "{{cluster.env}}"}},
    "spec": {"source": {"url": "dir:/srv/{{app}}", "options": {"exclude": ["{{path[1]}}"]}},
             "target": {"url": "mock:{{cluster.name}}"}, "prune": "{{prune}}",
             "substitute": {"REGION": "{{ cluster.name }}-{{cluster.env}}"}},
}


def test_render_fills_every_string_value_with_dotted_and_indexed_names() -> None:
    params = {"a.b": "x", "path[0]": "apps", "n": "1"}
    assert render_string("{{a.b}}/{{ path[0] }}/{{n}}{{n}}", params, where="S") == "x/apps/11"
    assert render({"k": ["{{n}}", 2, {"{{n}}": "{{a.b}}"}]}, params, where="S") == \
        {"k": ["1", 2, {"{{n}}": "x"}]}  # keys are left as written


def test_flatten_nested_and_scalars() -> None:
    assert flatten({"c": {"name": "eu", "tags": {"t": True}}, "n": 3, "l": [1, "b"], "z": None}) == \
        {"c.name": "eu", "c.tags.t": "true", "n": "3", "l": "1,b", "z": ""}


def test_generated_applications_are_filled_validated_and_owned() -> None:
    generated = generate(_set(TEMPLATE, [
        {"app": "web", "cluster": {"name": "eu", "env": "prod"}, "prune": True, "path[1]": "x"},
        {"app": "db", "cluster": {"name": "us", "env": "staging"}, "prune": False, "path[1]": "y"},
    ]))
    assert generated.keys == ("ops/web-eu", "ops/db-us")
    web, db = generated.applications
    assert web.spec.source.url == "dir:/srv/web" and web.spec.target.url == "mock:eu"
    assert web.spec.prune is True and db.spec.prune is False
    assert web.spec.substitute == {"REGION": "eu-prod"}
    assert web.spec.source.options == {"exclude": ["x"]}
    assert web.metadata.labels == {"env": "prod"}
    assert web.metadata.annotations == {OWNER_ANNOTATION: "ops/fleet"}
    assert generated.parameters[1]["cluster.env"] == "staging"


def test_unknown_parameter_names_the_set_and_the_field() -> None:
    template = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "target": {"url": "mock:{{clustr.name}}"}}}
    with pytest.raises(InputError) as caught:
        generate(_set(template, [{"app": "web", "cluster": {"name": "eu", "env": "p"}, "prune": 1,
                                  "path[1]": "x"}]))
    message = str(caught.value)
    assert "ApplicationSet ops/fleet" in message and "spec.template.spec.target.url" in message
    assert "'clustr.name'" in message and "cluster.name" in message


def test_duplicate_names_name_both_parameter_sets() -> None:
    template = {"metadata": {"name": "{{app}}"},
                "spec": {"source": {"url": "dir:/{{x}}"}, "target": {"url": "mock:"}}}
    with pytest.raises(InputError, match=r"\{app: web, x: 1\} and \{app: web, x: 2\} both "
                                         r"generate Application ops/web"):
        generate(_set(template, [{"app": "web", "x": 1}, {"app": "web", "x": 2}]))


def test_invalid_generated_application_names_the_set_and_parameters() -> None:
    template = {"metadata": {"name": "{{app}}"},
                "spec": {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}}
    with pytest.raises(InputError, match=r"ApplicationSet ops/fleet: generated .*metadata.name.*"
                                         r"\(parameters \{app: Not_A_Label\}\)"):
        generate(_set(template, [{"app": "Not_A_Label"}]))


def test_namespace_defaults_to_the_sets_and_may_be_templated() -> None:
    spec = {"source": {"url": "dir:/x"}, "target": {"url": "mock:"}}
    template = {"metadata": {"name": "a-{{n}}", "namespace": "{{ns}}"}, "spec": spec}
    assert generate(_set(template, [{"n": "1", "ns": "team"}])).keys == ("team/a-1",)
    template = {"metadata": {"name": "a-{{n}}"}, "spec": spec}
    assert generate(_set(template, [{"n": "1", "ns": "team"}])).keys == ("ops/a-1",)
