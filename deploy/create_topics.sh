#!/bin/sh
# Create every lendwatch topic before any worker starts (the broker has auto-create off).
# Runs in the apache/kafka image; idempotent, so the compose one-shot can run on every `up`.
set -eu

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
# Settings accepts kafka://host:port and ;-separated hosts; kafka-topics.sh wants host:port,host:port.
BOOTSTRAP=$(printf '%s' "${BOOTSTRAP#kafka://}" | tr ';' ',')
PARTITIONS="${LW_PARTITIONS:-8}"
# Overridable so tests can run this script against a stand-in for the Kafka tools.
KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"

# Must equal topics.names.TopicNames().all(); tests/test_compose.py checks it.
TOPICS="
lending.transactions
lending.logins
lending.repayments
lending.deadletter
alerts.fraud
alerts.security
alerts.collections
alerts.shadow
lending.feedback
"

# lending.feedback has one partition: every worker reads all of it and learns its verdicts in
# that one order, so that all workers' verdict models agree (as `lendwatch create-topics` does).
partitions_of() {
    if [ "$1" = lending.feedback ]; then echo 1; else echo "$PARTITIONS"; fi
}

for topic in $TOPICS; do
    "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$topic" --partitions "$(partitions_of "$topic")" --replication-factor 1
done

# --if-not-exists leaves an existing topic alone, so a changed LW_PARTITIONS would silently not
# apply; Faust tables need their source topics to have LW_PARTITIONS partitions, so stop here
# rather than let the workers crash-loop. Adding partitions remaps keys: that is a manual decision.
# The describe is its own assignment so that set -e stops on its failure instead of reading nothing.
described=$("$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe)
mismatched=$(printf '%s\n' "$described" |
    awk -v want="$PARTITIONS" -v topics="$(echo $TOPICS)" '
        BEGIN { n = split(topics, list); for (i = 1; i <= n; i++) ours[list[i]] = 1 }
        $1 == "Topic:" && /PartitionCount:/ {
            for (i = 1; i < NF; i++) if ($i == "PartitionCount:") count = $(i + 1)
            expected = ($2 == "lending.feedback") ? 1 : want
            if (($2 in ours) && count != expected) print $2 " has " count " partitions"
        }')
if [ -n "$mismatched" ]; then
    echo "LW_PARTITIONS=$PARTITIONS but existing topics differ:" >&2
    echo "$mismatched" >&2
    exit 1
fi
echo "lendwatch topics ready on $BOOTSTRAP with $PARTITIONS partitions"
