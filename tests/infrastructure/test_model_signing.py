"""Signed model bundles in the synthesized stack (issue 15): the key, who may sign or only
verify, and the bucket policy that keeps everyone else from writing models/."""

from __future__ import annotations

import pytest


def resources(template_json, kind):
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == kind}


def _listed(value):
    return value if isinstance(value, list) else [value]


def _kms_grants(template_json) -> dict[str, set[str]]:
    """Function name (score, batch, ...) -> the kms: actions its role may call (each role's
    from its own policy; no other policy grants kms actions)."""
    grants: dict[str, set[str]] = {}
    for logical_id, policy in resources(template_json, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = {a for a in _listed(statement["Action"]) if a.startswith("kms:")}
            if actions:
                assert statement["Effect"] == "Allow"
                grants.setdefault(logical_id, set()).update(actions)
    named = {}
    for name in ("score", "batch", "retrain", "monitor"):
        prefix = f"Signing{name.title()}Kms"
        named[name] = set().union(*(a for k, a in grants.items() if k.startswith(prefix)))
    others = {k: a for k, a in grants.items() if not k.startswith("Signing")}
    assert not others, f"kms actions granted outside the functions: {others}"
    return named


def _models_deny(template_json):
    for policy in resources(template_json, "AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Sid") == "OnlyRegistryWritersChangeModels":
                return statement
    raise AssertionError("no bucket policy statement guards models/")


def _role_of(template_json, function: str) -> str:
    functions = resources(template_json, "AWS::Lambda::Function")
    (props,) = [
        f["Properties"]
        for k, f in functions.items()
        if k.startswith(f"Functions{function.title()}") and "Handler" in f["Properties"]
    ]
    return props["Role"]["Fn::GetAtt"][0]


def test_the_stack_provisions_an_ecc_signing_key_behind_the_configured_alias(
    template_json, churn_config
):
    (key,) = resources(template_json, "AWS::KMS::Key").values()
    props = key["Properties"]
    assert (props["KeySpec"], props["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert not props.get("EnableKeyRotation")  # KMS cannot rotate asymmetric keys
    assert key["DeletionPolicy"] == "Retain"  # old versions verify only while it exists
    (alias,) = resources(template_json, "AWS::KMS::Alias").values()
    assert alias["Properties"]["AliasName"] == churn_config.default_signing_alias


def test_only_the_retrain_role_may_sign_the_others_only_verify(template_json):
    grants = _kms_grants(template_json)
    assert grants["retrain"] == {"kms:Sign", "kms:GetPublicKey", "kms:Verify"}
    for function in ("score", "batch", "monitor"):
        assert grants[function] == {"kms:GetPublicKey", "kms:Verify"}, function
    for logical_id, policy in resources(template_json, "AWS::IAM::Policy").items():
        if logical_id.startswith("Signing"):
            function = logical_id.removeprefix("Signing").split("Kms")[0].lower()
            assert policy["Properties"]["Roles"] == [{"Ref": _role_of(template_json, function)}]


def test_the_bucket_denies_model_writes_to_all_but_the_retrain_role(template_json):
    deny = _models_deny(template_json)
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert set(deny["Action"]) == {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}
    (resource,) = _listed(deny["Resource"])
    assert resource["Fn::Join"][1][-1] == "/models/*"
    allowed = _listed(deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"])
    roles = {a["Fn::GetAtt"][0] for a in allowed if isinstance(a, dict)}
    assert roles == {_role_of(template_json, "retrain")}
    for function in ("score", "batch", "monitor"):
        assert _role_of(template_json, function) not in roles


@pytest.mark.parametrize(
    ("key_id", "resource_tail"),
    [
        ("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", None),
        ("alias/platform-model-signing", "key/*"),
    ],
)
def test_an_existing_key_is_granted_not_created_and_writers_are_allowed(
    churn_config, key_id, resource_tail
):
    from infrastructure.app import stack_name, synth_templates
    from skylift.topology import describe

    writer = "arn:aws:iam::123456789012:role/ml-engineers-*"
    registry = churn_config.registry.model_copy(
        update={"signing_key_id": key_id, "writers": (writer,)}
    )
    config = churn_config.model_copy(update={"registry": registry})
    template = synth_templates(config)[stack_name(config)]
    assert not resources(template, "AWS::KMS::Key")
    statements = [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("kms:") for a in _listed(s["Action"]))
    ]
    assert len(statements) == len(describe(config).functions)  # each function loads models
    for statement in statements:
        (resource,) = _listed(statement["Resource"])
        if resource_tail is None:
            assert resource == key_id
            assert "Condition" not in statement
        else:
            assert resource["Fn::Join"][1][-1] == f":{resource_tail}"
            assert statement["Condition"] == {
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": key_id}
            }
    assert writer in _listed(_models_deny(template)["Condition"]["ArnNotLike"]["aws:PrincipalArn"])
