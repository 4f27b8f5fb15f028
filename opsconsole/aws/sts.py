from opsconsole.aws.clients import call, client


def get_caller_identity(*, region: str | None = None, fast: bool = False) -> dict[str, str]:
    resp = call(client("sts", region, fast=fast).get_caller_identity)
    return {"account": resp["Account"], "arn": resp["Arn"]}
