"""A single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM).

The jars come from Maven Central through the pom beside this file; the storage is formatted
once, then ``kafka.Kafka`` runs detached under the default Java (17).
"""

from __future__ import annotations

import base64
import shutil
import uuid
from pathlib import Path
from typing import ClassVar

import structlog

from infra.stack import accounts, packages, process
from infra.stack.errors import StackError
from infra.stack.kafka.protocol import fetch_metadata
from infra.stack.service import LOOPBACK, Service

log = structlog.get_logger(__name__)

POM = Path(__file__).with_name("pom.xml")
JAVA = "java"
JAVA_PACKAGE = "openjdk-17-jre-headless"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
PID_MARKER = MAIN_CLASS
NODE_ID = 1
# The flags Kafka's own kafka-run-class.sh uses for the broker.
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
LOG_FILE_MAX_SIZE = "100MB"
LOG_FILES_KEPT = 5
PROBE_TIMEOUT_S = 2.0


def new_cluster_id() -> str:
    """What ``StorageTool random-uuid`` prints (Kafka's Uuid.randomUuid), without a JVM.

    A base64url UUID without padding; Kafka re-draws ids starting with "-" because they
    would read as command-line flags.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class KafkaBroker(Service):
    name: ClassVar[str] = "kafka"
    pid_marker: ClassVar[str] = PID_MARKER
    startup_timeout_s: ClassVar[float] = 90.0
    shutdown_timeout_s: ClassVar[float] = 60.0

    @property
    def version(self) -> str:
        return self.settings.kafka.version

    @property
    def libs_dir(self) -> Path:
        return self.home / f"libs-{self.version}"

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def server_properties(self) -> Path:
        return self.config_dir / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.config_dir / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's own stdout/stderr: crashes before logging starts end up here."""
        return self.logs_dir / "console.log"

    @property
    def log_file(self) -> Path:
        return max(
            (p for p in (self.server_log, self.console_log) if p.exists()),
            key=lambda p: p.stat().st_mtime,
            default=self.server_log,
        )

    @property
    def port(self) -> int:
        """The client port, taken from the first bootstrap address; the broker binds it on
        loopback whatever host the bootstrap string names."""
        first = self.settings.kafka.bootstrap.split(",")[0]
        return int(first.rsplit(":", 1)[1])

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.settings.kafka.controller_port]

    def install(self) -> None:
        accounts.make_dirs(None, self.home, self.data_dir, self.logs_dir, self.config_dir)
        install_log = self.logs_dir / "install.log"
        packages.ensure_apt(JAVA, [JAVA_PACKAGE], install_log)
        if self.libs_dir.exists():
            return
        # Resolve into a scratch directory and rename, so an interrupted download is never
        # mistaken for a complete set of jars.
        partial = self.libs_dir.with_name(self.libs_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        packages.copy_dependencies(POM, partial, {"kafka.version": self.version}, install_log)
        if not (partial / f"kafka_2.13-{self.version}.jar").exists():
            raise StackError(f"Maven did not deliver kafka_2.13-{self.version}.jar", install_log)
        partial.rename(self.libs_dir)

    def _write_config(self) -> None:
        client = f"{LOOPBACK}:{self.port}"
        controller = f"{LOOPBACK}:{self.settings.kafka.controller_port}"
        self.server_properties.write_text(
            "# Written by infra/stack/kafka/broker.py on every start; edits are overwritten.\n"
            "process.roles=broker,controller\n"
            f"node.id={NODE_ID}\n"
            f"controller.quorum.voters={NODE_ID}@{controller}\n"
            f"listeners=PLAINTEXT://{client},CONTROLLER://{controller}\n"
            f"advertised.listeners=PLAINTEXT://{client}\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            f"log.dirs={self.data_dir}\n"
            "num.partitions=1\n"
            # The project creates every topic explicitly, with its partition count.
            "auto.create.topics.enable=false\n"
            # One broker: internal topics cannot have more replicas than that.
            "offsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            # Tests start and stop consumer groups constantly; do not wait for late joiners.
            "group.initial.rebalance.delay.ms=0\n"
        )
        self.log4j_config.write_text(
            "# Written by infra/stack/kafka/broker.py on every start; edits are overwritten.\n"
            "status = warn\n"
            "name = damai-kafka\n"
            # Log4j's own shutdown hook would race Kafka's and swallow the shutdown log.
            "shutdownHook = disable\n"
            "appender.server.type = RollingFile\n"
            "appender.server.name = server\n"
            f"appender.server.fileName = {self.server_log}\n"
            f"appender.server.filePattern = {self.server_log}.%i\n"
            "appender.server.layout.type = PatternLayout\n"
            "appender.server.layout.pattern = [%d] %p %m (%c)%n\n"
            "appender.server.policies.type = Policies\n"
            "appender.server.policies.size.type = SizeBasedTriggeringPolicy\n"
            f"appender.server.policies.size.size = {LOG_FILE_MAX_SIZE}\n"
            "appender.server.strategy.type = DefaultRolloverStrategy\n"
            f"appender.server.strategy.max = {LOG_FILES_KEPT}\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.server.ref = server\n"
            # Per-request lines would drown everything else.
            "logger.request.name = kafka.request.logger\n"
            "logger.request.level = WARN\n"
            "logger.channel.name = kafka.network.RequestChannel$\n"
            "logger.channel.level = WARN\n"
        )

    def _java(self, *args: str, heap: bool = False) -> list[str]:
        heap_mb = self.settings.kafka.heap_mb
        return [
            JAVA,
            *((f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", *JVM_FLAGS) if heap else ()),
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp",
            f"{self.libs_dir}/*",
            *args,
        ]

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = new_cluster_id()
        log.info("stack.kafka_format_storage", cluster_id=cluster_id, data=str(self.data_dir))
        process.run(
            self._java(STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(self.server_properties)),
            log_file=self.console_log,
            cwd=self.home,
            what="kafka StorageTool format",
        )

    def start(self) -> None:
        self._write_config()
        self._format_storage()
        pid = process.spawn_detached(
            self._java(MAIN_CLASS, str(self.server_properties), heap=True),
            log_file=self.console_log,
            cwd=self.home,
        )
        process.write_pid(self.pid_file, pid)

    def ready(self) -> tuple[bool, str]:
        try:
            meta = fetch_metadata(LOOPBACK, self.port, PROBE_TIMEOUT_S)
        except (OSError, ValueError) as exc:
            return False, f"no metadata: {exc}"
        if not meta.brokers or meta.controller_id < 0:
            return False, f"cluster {meta.cluster_id} has no live broker/controller yet"
        brokers = ", ".join(f"{b.node_id}@{b.host}:{b.port}" for b in meta.brokers)
        return True, (
            f"Kafka {self.version}, cluster {meta.cluster_id}, brokers [{brokers}], controller {meta.controller_id}"
        )
