"""Synthesize once per session (jsii is slow); tests assert on the templates."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def template(churn_config):
    from aws_cdk.assertions import Template

    from infrastructure.app import stack_name, synth_templates

    templates = synth_templates(churn_config)
    return Template.from_json(templates[stack_name(churn_config)])


@pytest.fixture(scope="session")
def template_json(template):
    return template.to_json()
