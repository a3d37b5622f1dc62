"""Privacy and security: uploader pseudonyms, secrets masked everywhere, TLS to the broker and S3, SSE of
outputs, the worker's MinIO policy, and the scanner that checks the whole suite's logs and catalogs."""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import signal
import subprocess
import time
from typing import Any
import uuid

from celery import Celery
from kombu.connection import Connection
from minio import Minio
import pytest
import urllib3

from pipelines.catalog import Catalog
from pipelines.config import BrokerTls, S3Settings, Settings
from pipelines.errors import CatalogError, ConfigError, StorageError
from pipelines.privacy import (
    RedactingFilter,
    install_redaction,
    is_pseudonym,
    pseudonym,
    redact,
    settings_secrets,
    url_secrets,
)
from pipelines.storage import ObjectRef
from pipelines.storage.events import minimal_event, parse_bucket_event
from pipelines.storage.s3 import S3Storage
from tests import secretscan
from tests.conftest import DATA, MEDIAWORKER
from tests.s3server import S3Server
from workers.celery_app import broker_tls_config, celery_config

KEY = b"a-test-identity-key"
EVENT = (DATA / "minio_event_put.json").read_text()
DOCKER = Path(__file__).resolve().parent.parent / "docker"


# --- identities -------------------------------------------------------------------------------------------

def test_a_pseudonym_is_keyed_stable_and_not_the_identity() -> None:
    first = pseudonym("uploader-7f3a", KEY)
    assert first is not None and is_pseudonym(first) and "uploader-7f3a" not in first
    assert pseudonym("uploader-7f3a", KEY) == first  # the same uploader links to the same pseudonym
    assert pseudonym("uploader-7f3b", KEY) != first
    assert pseudonym("uploader-7f3a", b"another deployment's key") != first
    assert pseudonym("uploader-7f3a", None) is None and pseudonym("", KEY) is None  # no key: nothing kept


def test_the_minimal_event_keeps_no_identity_and_announces_the_same_master() -> None:
    minimal = minimal_event(EVENT, identity_key=KEY)
    for identity in ("uploader-7f3a", "10.0.0.5", "principalId", "sourceIPAddress", "userAgent", "x-amz-request-id"):
        assert identity not in minimal
    (raw_master,), _ = parse_bucket_event(EVENT, masters_bucket="masters", identity_key=KEY)
    (master,), _ = parse_bucket_event(minimal, masters_bucket="masters")  # the pseudonym travels as it is
    assert master == raw_master and master.uploader == pseudonym("uploader-7f3a", KEY)
    assert master.asset_id == "track-0042"  # the asset-id metadata is kept; other metadata is not
    assert json.loads(minimal)["Records"][0]["s3"]["object"]["userMetadata"] == {"X-Amz-Meta-Asset-Id": "track-0042"}


def test_without_an_identity_key_the_uploader_is_dropped() -> None:
    minimal = minimal_event(EVENT, identity_key=None)
    assert "uploader" not in minimal and "7f3a" not in minimal
    (master,), _ = parse_bucket_event(EVENT, masters_bucket="masters", identity_key=None)
    assert master.uploader is None


def test_fuzz_findings_in_event_parsing_stay_fixed() -> None:
    """bench/fuzz.py --target events: structured values where a name or key belongs were copied into the
    minimal event (identities with them), and a non-string key became the object key ``{'a': 1}``."""
    event = json.loads(EVENT)
    event["Records"][0]["eventName"] = {"principalId": "uploader-7f3a"}
    assert "uploader-7f3a" not in minimal_event(json.dumps(event), identity_key=KEY)
    event = json.loads(EVENT)
    event["Records"][0]["s3"]["object"]["key"] = {"principalId": "uploader-7f3a"}
    event["Records"][0]["s3"]["object"]["eTag"] = ["uploader-7f3a"]
    masters, ignored = parse_bucket_event(json.dumps(event), masters_bucket="masters")
    assert masters == [] and ignored == ["s3:ObjectCreated:Put: the object has no key"]
    assert "uploader-7f3a" not in minimal_event(json.dumps(event), identity_key=KEY)


@pytest.fixture
def event_app(tmp_path: Path) -> Celery:
    """The real Celery app on an in-memory broker, with a SQLite catalog and the identity key."""
    from workers.celery_app import create_app

    env = {"MEDIAWORKER_HOME": str(tmp_path / "home"), "MEDIAWORKER_BROKER_URL": "memory://",
           "MEDIAWORKER_IDENTITY_KEY": KEY.decode()}
    return create_app(Settings.from_env(env))


def test_an_upload_notification_leaves_no_identity_in_task_arguments_logs_or_catalog(
    event_app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    from workers.notifications import BucketEventConsumer, handle_bucket_event

    @dataclass
    class Message:
        body: bytes
        acked: bool = False

        def ack(self) -> None:
            self.acked = True

    consumer = BucketEventConsumer.__new__(BucketEventConsumer)
    consumer.app = event_app
    message = Message(EVENT.encode())
    consumer.on_message(message)
    assert message.acked
    with event_app.connection_for_read() as connection:
        queued = connection.SimpleQueue("bookkeeping").get(timeout=5)
        (_args, kwargs, _embed) = queued.payload
        queued.ack()
    assert "uploader-7f3a" not in json.dumps(kwargs) and "10.0.0.5" not in json.dumps(kwargs)

    with caplog.at_level(logging.INFO):
        (job_id,) = handle_bucket_event(event_app, kwargs["payload"])
    expected = pseudonym("uploader-7f3a", KEY)
    assert expected is not None and expected in caplog.text  # the link the rights team can follow
    assert "uploader-7f3a" not in caplog.text and "10.0.0.5" not in caplog.text
    catalog: Catalog = event_app.conf.mediaworker_runtime.catalog
    url = catalog.engine.url.render_as_string(hide_password=False)
    job = catalog.get_job(job_id)
    assert job is not None and job.uploader == expected  # kept in the catalog as the pseudonym only
    assert secretscan.scan_catalog(url, {"uploader-7f3a": "identity", "10.0.0.5": "ip"}) == []


# --- secrets ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Cannot connect to amqp://worker:Hunter2pw@rabbit:5672//: refused", "Hunter2pw"),
        ("redis://:Hunter2pw@127.0.0.1:6379/0", "Hunter2pw"),
        ("rediss://default:Hunter2pw@cache:6380/0?ssl_cert_reqs=required", "Hunter2pw"),
        ("(psycopg.OperationalError) postgresql+psycopg://catalog:Hunter2pw@db/catalog", "Hunter2pw"),
        ("invalid dsn: host=db user=catalog password=Hunter2pw dbname=catalog", "Hunter2pw"),
        ("GET /media-out/x?X-Amz-Credential=AKIA1234&X-Amz-Signature=abcdef0123456789 403", "abcdef0123456789"),
    ],
)
def test_redact_masks_url_passwords_and_password_values(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked and "***" in masked


def test_redact_masks_the_deployments_own_secrets_wherever_they_appear() -> None:
    env = {"MEDIAWORKER_HOME": "/tmp/x", "MEDIAWORKER_S3_ENDPOINT": "minio:9000",
           "MEDIAWORKER_S3_ACCESS_KEY": "worker-access", "MEDIAWORKER_S3_SECRET_KEY": "s3-Secret-Value",
           "MEDIAWORKER_BROKER_URL": "amqp://worker:broker-pw-1@rabbit//",
           "MEDIAWORKER_CATALOG_URL": "postgresql+psycopg://catalog:db-pw-2@db/catalog",
           "MEDIAWORKER_IDENTITY_KEY": "identity-key-3"}
    settings = Settings.from_env(env)
    secrets = settings_secrets(settings)
    assert set(secrets) >= {"s3-Secret-Value", "broker-pw-1", "db-pw-2", "identity-key-3"}
    text = "signature s3-Secret-Value; key identity-key-3 (db-pw-2 / broker-pw-1)"
    assert redact(text, secrets) == "signature ***; key *** (*** / ***)"
    assert not any(secret in repr(settings) for secret in secrets)  # a logged settings object shows none
    assert url_secrets("redis://127.0.0.1:6379/0") == () and url_secrets("not a url") == ()


def test_the_logging_filter_masks_arguments_and_tracebacks(tmp_path: Path) -> None:
    logger = logging.getLogger("mediaworker-redaction-test")
    logger.propagate = False
    handler = logging.FileHandler(tmp_path / "worker.log")
    logger.addHandler(handler)
    install_redaction(logger, ["s3-Secret-Value"])
    try:
        logger.warning("connecting to %s with %s", "amqp://u:broker-pw-1@rabbit//", "s3-Secret-Value")
        try:
            raise RuntimeError("auth failed for s3-Secret-Value")
        except RuntimeError:
            logger.exception("storage failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    written = (tmp_path / "worker.log").read_text()
    assert "broker-pw-1" not in written and "s3-Secret-Value" not in written
    assert "amqp://u:***@rabbit//" in written and "auth failed for ***" in written
    assert isinstance(handler.filters[0], RedactingFilter)


def test_command_errors_do_not_echo_the_catalog_password(tmp_path: Path) -> None:
    env = {**os.environ, "MEDIAWORKER_HOME": str(tmp_path),
           "MEDIAWORKER_CATALOG_URL": "postgresql+psycopg://catalog:Cat-Pw-9731@127.0.0.1:1/catalog"}
    proc = subprocess.run([MEDIAWORKER, "status", "some-asset"], capture_output=True, text=True, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "catalog is unavailable" in proc.stderr
    assert "Cat-Pw-9731" not in proc.stderr + proc.stdout


def test_a_worker_never_logs_its_broker_password(tmp_path: Path) -> None:
    """A real ``mediaworker worker`` with a password in its broker URL: the banner and the log records name
    the broker, never the password."""
    env = {**os.environ, "MEDIAWORKER_HOME": str(tmp_path / "home"),
           "MEDIAWORKER_BROKER_URL": "redis://:Broker-Pw-5521@127.0.0.1:6379/9"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([MEDIAWORKER, "worker", "--pool", "solo", "--without-gossip", "--without-mingle"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180  # a worker's start (imports, the pool) on a machine that may be busy
        while "Connected to redis://" not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = log.read_text(errors="replace")
    assert "redis://:**@127.0.0.1:6379/9" in text, text[-2000:]  # the banner
    assert "Connected to redis://:***@127.0.0.1:6379/9" in text, text[-2000:]  # a log record, through the filter
    assert "Broker-Pw-5521" not in text


# --- TLS and server-side encryption ----------------------------------------------------------------------

@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path
    chain: Path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A test certificate authority and a server certificate it signed for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=mediaworker test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    chain = folder / "chain.pem"
    chain.write_text((folder / "server.pem").read_text() + (folder / "ca.pem").read_text())
    return Tls(folder / "ca.pem", folder / "server.pem", folder / "server.key", chain)


def test_tls_settings_come_from_the_environment() -> None:
    env = {"MEDIAWORKER_HOME": "/tmp/x", "MEDIAWORKER_BROKER_URL": "amqps://u:p@rabbit:5671//",
           "MEDIAWORKER_BROKER_TLS_CA": "/etc/ca.pem", "MEDIAWORKER_BROKER_TLS_CERT": "/etc/client.pem",
           "MEDIAWORKER_BROKER_TLS_KEY": "/etc/client.key",
           "MEDIAWORKER_S3_ENDPOINT": "minio:9000", "MEDIAWORKER_S3_ACCESS_KEY": "a", "MEDIAWORKER_S3_SECRET_KEY": "b",
           "MEDIAWORKER_S3_CA_BUNDLE": "/etc/minio-ca.pem", "MEDIAWORKER_S3_SSE": "aws:kms",
           "MEDIAWORKER_S3_SSE_KMS_KEY_ID": "media-out-key"}
    settings = Settings.from_env(env)
    assert settings.broker_tls == BrokerTls(ca_file="/etc/ca.pem", cert_file="/etc/client.pem",
                                            key_file="/etc/client.key")
    assert settings.s3 is not None and settings.s3.ca_bundle == "/etc/minio-ca.pem"
    assert (settings.s3.sse, settings.s3.sse_kms_key_id) == ("aws:kms", "media-out-key")
    ssl_options = celery_config(settings)["broker_use_ssl"]
    assert ssl_options["ca_certs"] == "/etc/ca.pem" and ssl_options["certfile"] == "/etc/client.pem"
    assert ssl_options["cert_reqs"] == 2 and ssl_options["server_hostname"] == "rabbit"  # ssl.CERT_REQUIRED
    assert "broker_use_ssl" not in celery_config(Settings.from_env({"MEDIAWORKER_HOME": "/tmp/x"}))
    for bad in ({"MEDIAWORKER_S3_SSE": "rot13"}, {"MEDIAWORKER_S3_SSE_KMS_KEY_ID": ""},
                {"MEDIAWORKER_S3_SSE": "aws:kms", "MEDIAWORKER_S3_SSE_KMS_KEY_ID": "k", "MEDIAWORKER_S3_SECURE": "false"}):
        with pytest.raises(ConfigError):
            Settings.from_env({**env, **bad})


@pytest.fixture
def tls_redis(tls: Tls, tmp_path: Path) -> Any:
    """A real Redis server that speaks only TLS, on a free port."""
    import socket

    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--tls-cert-file", str(tls.cert),
         "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_a_rediss_broker_is_verified_against_the_configured_ca(tls: Tls, tls_redis: int, tmp_path: Path) -> None:
    base = {"MEDIAWORKER_HOME": str(tmp_path), "MEDIAWORKER_BROKER_URL": f"rediss://127.0.0.1:{tls_redis}/0"}
    trusted = Settings.from_env({**base, "MEDIAWORKER_BROKER_TLS_CA": str(tls.ca)})
    app = Celery("tls-test")
    app.config_from_object(celery_config(trusted))
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as connection:
        connection.SimpleQueue(queue).put({"hello": "over TLS"})
        message = connection.SimpleQueue(queue).get(timeout=10)
        assert message.payload == {"hello": "over TLS"}
        message.ack()
    untrusted = broker_tls_config(Settings.from_env(base))  # the system's authorities do not know the test CA
    with Connection(base["MEDIAWORKER_BROKER_URL"], ssl=untrusted["broker_use_ssl"],  # type: ignore[no-untyped-call]
                    connect_timeout=5) as connection, pytest.raises(Exception, match="(?i)certificate"):
        connection.ensure_connection(max_retries=1)


def test_postgresql_tls_options_in_the_catalog_url_reach_libpq() -> None:
    """``sslmode=require`` in the catalog URL: against a server with TLS off (the local test server) the
    catalog refuses to connect in plain text rather than downgrade; against one with TLS on, the session is
    encrypted."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    server = make_url(os.environ.get("MEDIAWORKER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    url = server.update_query_dict({"sslmode": "require"}).render_as_string(hide_password=False)
    try:
        catalog = Catalog.open(url)
    except CatalogError as exc:
        assert "server does not support SSL, but SSL was required" in str(exc)
        return
    try:
        with catalog.engine.connect() as connection:
            assert connection.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar()
    finally:
        catalog.dispose()


@pytest.fixture
def tls_s3(tls: Tls, tmp_path: Path) -> Any:
    with S3Server(tmp_path / "s3", buckets=("masters",), tls=(tls.chain, tls.key)) as server:
        yield server


def _recording_pool(ca: Path | None = None) -> Any:
    class Recording(urllib3.PoolManager):
        def __init__(self) -> None:
            super().__init__(cert_reqs="CERT_REQUIRED", ca_certs=str(ca) if ca else None,
                             retries=urllib3.Retry(total=1), timeout=urllib3.Timeout(connect=5, read=30))
            self.sent: list[tuple[str, str, dict[str, str]]] = []

        def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
            self.sent.append((method, url, dict(kw.get("headers") or {})))
            return super().urlopen(method, url, redirect=redirect, **kw)

    return Recording()


def test_s3_over_tls_trusts_the_configured_ca_bundle_only(tls: Tls, tls_s3: Any, tmp_path: Path) -> None:
    master = tmp_path / "master.bin"
    master.write_bytes(os.urandom(2048))
    settings = S3Settings(endpoint=tls_s3.endpoint, access_key=tls_s3.access_key, secret_key=tls_s3.secret_key,
                          secure=True, region="us-east-1", ca_bundle=str(tls.ca))
    storage = S3Storage(settings, retries=0)
    storage.put_file(master, ObjectRef("media-out", "hls/a/seg.m4s"), content_type="video/iso.segment")
    assert storage.fetch(ObjectRef("media-out", "hls/a/seg.m4s"), tmp_path / "back") and \
        (tmp_path / "back").read_bytes() == master.read_bytes()
    without_ca = S3Storage(S3Settings(endpoint=tls_s3.endpoint, access_key=tls_s3.access_key,
                                      secret_key=tls_s3.secret_key, secure=True, region="us-east-1"), retries=0)
    with pytest.raises(StorageError, match="(?i)certificate") as refused:
        without_ca.fetch(ObjectRef("media-out", "hls/a/seg.m4s"), tmp_path / "again")
    assert tls_s3.secret_key not in str(refused.value)


@pytest.mark.parametrize(("sse", "kms_key", "headers"), [
    ("AES256", None, {"x-amz-server-side-encryption": "AES256"}),
    ("aws:kms", "media-out-key", {"x-amz-server-side-encryption": "aws:kms",
                                  "x-amz-server-side-encryption-aws-kms-key-id": "media-out-key"}),
])
def test_every_write_asks_for_server_side_encryption(
    tls: Tls, tls_s3: Any, tmp_path: Path, sse: str, kms_key: str | None, headers: dict[str, str]
) -> None:
    """Against the real S3 server over TLS (SSE-KMS needs TLS): each PUT, of a small object and of every part
    of a multipart one, carries the SSE headers; the server accepts them and the objects read back."""
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(os.urandom(1000))
    large.write_bytes(os.urandom((16 << 20) + 1000))  # two parts
    pool = _recording_pool(tls.ca)
    settings = S3Settings(endpoint=tls_s3.endpoint, access_key=tls_s3.access_key, secret_key=tls_s3.secret_key,
                          secure=True, region="us-east-1", sse=sse, sse_kms_key_id=kms_key)
    storage = S3Storage(settings, http_client=pool)
    storage.put_file(small, ObjectRef("media-out", "hls/b/master.m3u8"), content_type="application/vnd.apple.mpegurl")
    storage.put_file(large, ObjectRef("media-out", "hls/b/big.m4s"), content_type="video/iso.segment")
    def sent_to(key: str, method: str, marker: str) -> list[dict[str, str]]:
        return [{k.lower(): v for k, v in sent.items()} for m, url, sent in pool.sent
                if m == method and f"/hls/b/{key}" in url and marker in url]

    # A simple PUT, and the request that starts a multipart upload, ask for encryption (S3 applies it to
    # the parts and the completed object; only customer keys, not used here, go with every part).
    (simple,) = sent_to("master.m3u8", "PUT", "")
    (started,) = sent_to("big.m4s", "POST", "uploads")
    assert len(sent_to("big.m4s", "PUT", "partNumber=")) == 2
    for request in (simple, started):
        assert {k: request.get(k) for k in headers} == headers
    client = Minio(tls_s3.endpoint, tls_s3.access_key, tls_s3.secret_key, secure=True, region="us-east-1",
                   http_client=urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(tls.ca)))
    assert client.stat_object("media-out", "hls/b/big.m4s").size == large.stat().st_size


# --- the MinIO policy ------------------------------------------------------------------------------------

def test_the_worker_policy_allows_reading_masters_and_writing_outputs_only() -> None:
    policy = json.loads((DOCKER / "minio-worker-policy.json").read_text())
    granted = {(action, resource) for statement in policy["Statement"] if statement["Effect"] == "Allow"
               for action in statement["Action"] for resource in statement["Resource"]}
    assert all(statement["Effect"] == "Allow" and "Condition" not in statement for statement in policy["Statement"])
    assert granted == {
        ("s3:GetObject", "arn:aws:s3:::masters/*"), ("s3:GetObjectVersion", "arn:aws:s3:::masters/*"),
        ("s3:GetBucketLocation", "arn:aws:s3:::masters"),
        ("s3:GetObject", "arn:aws:s3:::media-out/*"), ("s3:PutObject", "arn:aws:s3:::media-out/*"),
        ("s3:DeleteObject", "arn:aws:s3:::media-out/*"), ("s3:AbortMultipartUpload", "arn:aws:s3:::media-out/*"),
        ("s3:ListBucket", "arn:aws:s3:::media-out"), ("s3:GetBucketLocation", "arn:aws:s3:::media-out"),
        ("s3:ListBucketMultipartUploads", "arn:aws:s3:::media-out"),
    }


# --- the scan after the suite ----------------------------------------------------------------------------

def test_the_scanner_finds_a_planted_secret_in_a_log_and_in_a_catalog(tmp_path: Path) -> None:
    planted = f"planted-{uuid.uuid4().hex}"
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker.log").write_text(f"INFO connecting with {planted}\n")
    (tmp_path / "logs" / "clean.log").write_text("INFO nothing to see\n")
    findings = secretscan.scan_files([tmp_path], {planted: "the planted secret"})
    assert [(Path(f.where).name, f.what) for f in findings] == [("worker.log", "the planted secret")]

    catalog = Catalog.open(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        catalog.create_job(asset_id="asset-1", source_uri=f"s3://masters/{planted}", job_id=str(uuid.uuid4()))
    finally:
        catalog.dispose()
    assert any(f.what == "the planted secret" for f in secretscan.scan_files([tmp_path / "catalog.sqlite3"],
                                                                             {planted: "the planted secret"}))
    in_rows = secretscan.scan_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite3'}", {planted: "the planted secret"})
    assert [f.where for f in in_rows] == ["catalog table jobs"]
    assert secretscan.scan_files([tmp_path], {"absent-" + planted: "x"}) == []


def test_the_suite_registers_its_secrets_for_the_scan() -> None:
    needles = secretscan.needles()
    assert os.environ["MEDIAWORKER_IDENTITY_KEY"] in needles
    assert "uploader-7f3a" in needles and "10.0.0.5" in needles
