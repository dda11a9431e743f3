"""Apache Kafka in KRaft single-node mode: the broker service, its health probe and its pom."""
