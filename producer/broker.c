/* producer_broker: the embedded broker, librdkafka's mock cluster. It speaks
 * the Kafka protocol on 127.0.0.1 (random ports), so kcat and any client can
 * use it. The mock API is experimental (rdkafka_mock.h): every call to it is
 * in this file and nowhere else. Limits: no SASL/TLS, no compaction, no
 * CreateTopics, about 5 MiB or 100k message sets kept per partition. */
#include <stdlib.h>
#include <string.h>

#include "producer.h" /* rdkafka.h, which rdkafka_mock.h needs first */
#include "util.h"

#include <librdkafka/rdkafka_mock.h>

struct producer_broker {
    rd_kafka_t *rk; /* owns the mock cluster; never used as a client */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
    int n_brokers;
};

producer_broker *producer_broker_start(int partitions, const char *const *topics, size_t n_topics,
                                       char *errstr, size_t errstr_size) {
    return producer_broker_start_cluster(1, partitions, topics, n_topics, errstr, errstr_size);
}

static rd_kafka_t *owner_new(char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    /* The owner never connects anywhere; keep it quiet about that. */
    rd_kafka_conf_set(conf, "client.id", "recstream-embedded-broker", why, sizeof(why));
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof(why));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        snprintf(errstr, errstr_size, "embedded broker: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return rk; /* conf now owned by rk */
}

producer_broker *producer_broker_start_cluster(int n_brokers, int partitions,
                                               const char *const *topics, size_t n_topics,
                                               char *errstr, size_t errstr_size) {
    if (n_brokers < 1 || partitions < 1)
        return snprintf(errstr, errstr_size,
                        "embedded broker: need at least one broker "
                        "and one partition"),
               NULL;
    rd_kafka_t *rk = owner_new(errstr, errstr_size);
    if (!rk) return NULL;
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, n_brokers);
    if (!mc) {
        snprintf(errstr, errstr_size, "embedded broker: could not start the mock cluster");
        rd_kafka_destroy(rk);
        return NULL;
    }
    producer_broker *b = util_calloc(1, sizeof(*b));
    b->rk = rk;
    b->mc = mc;
    b->n_brokers = n_brokers;
    b->bootstraps = util_strdup(rd_kafka_mock_cluster_bootstraps(mc));
    for (size_t i = 0; i < n_topics; i++)
        if (producer_broker_create_topic(b, topics[i], partitions, errstr, errstr_size)) {
            producer_broker_stop(b);
            return NULL;
        }
    return b;
}

const char *producer_broker_bootstraps(const producer_broker *b) {
    return b->bootstraps;
}

int producer_broker_create_topic(producer_broker *b, const char *topic, int partitions,
                                 char *errstr, size_t errstr_size) {
    int rf = b->n_brokers < 3 ? b->n_brokers : 3;
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(b->mc, topic, partitions, rf);
    if (err) {
        snprintf(errstr, errstr_size, "embedded broker: topic '%s': %s", topic,
                 rd_kafka_err2str(err));
        return -1;
    }
    log_debug("embedded broker: topic %s with %d partitions", topic, partitions);
    return 0;
}

int producer_broker_set_down(producer_broker *b, int32_t broker_id, int down) {
    rd_kafka_resp_err_t err = down ? rd_kafka_mock_broker_set_down(b->mc, broker_id)
                                   : rd_kafka_mock_broker_set_up(b->mc, broker_id);
    return err ? -1 : 0;
}

int producer_broker_set_rtt(producer_broker *b, int32_t broker_id, int rtt_ms) {
    return rd_kafka_mock_broker_set_rtt(b->mc, broker_id, rtt_ms) ? -1 : 0;
}

void producer_broker_push_errors(producer_broker *b, int16_t api_key, size_t n,
                                 const rd_kafka_resp_err_t *errors) {
    rd_kafka_mock_push_request_errors_array(b->mc, api_key, n, errors);
}

void producer_broker_stop(producer_broker *b) {
    if (!b) return;
    rd_kafka_mock_cluster_destroy(b->mc);
    rd_kafka_destroy(b->rk);
    free(b->bootstraps);
    free(b);
}
