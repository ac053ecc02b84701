"""Sessions share the parsed service models, never credentials or settings."""

from __future__ import annotations

from local_mlops.s3 import boto_session


def test_sessions_share_the_loader_and_keep_their_own_credentials_and_region() -> None:
    first = boto_session("us-east-1", aws_access_key_id="AKIDFIRST", aws_secret_access_key="one")
    second = boto_session("eu-west-1", aws_access_key_id="AKIDSECOND", aws_secret_access_key="two")
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    a = first.client("s3", endpoint_url="http://127.0.0.1:1")
    b = second.client("s3", endpoint_url="http://127.0.0.1:1")
    assert a._request_signer._credentials.access_key == "AKIDFIRST"
    assert b._request_signer._credentials.access_key == "AKIDSECOND"
    assert (a.meta.region_name, b.meta.region_name) == ("us-east-1", "eu-west-1")
    for _ in range(3):
        boto_session("us-east-1")
    assert len(loader.search_paths) == len(set(loader.search_paths))  # not one more a session
