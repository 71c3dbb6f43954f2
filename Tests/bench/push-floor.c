/* push-floor: the least an SSE push server can do, for the floor rows of Tests/bench/compare-push.sh.
 *
 * One thread, one epoll set. `GET /subscribe?topic=bench/N...` gets a 200 text/event-stream head and joins topic N's
 * list; `POST /publish?topic=bench/N` (Content-Length body, pipelined or not) is answered 200 `{"published":1}`
 * and its body written to every stream of topic N as `id: SEQ\ndata: BODY\n\n`, one write() per stream.
 * `GET /subscribe?topic=bench/N&mode=longpoll` (with `last_event_id=ID`, or none for "from now") is answered with
 * the messages after ID as soon as there are any (`Last-Event-ID` header, a JSON-like body holding each payload);
 * the last 128 messages of every topic that was ever polled are kept for that. No parsing beyond this, no limits,
 * no back-pressure: whatever it costs is the kernel's share of a delivery.
 *
 *   cc -O2 -o push-floor push-floor.c && ./push-floor PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536
#define MAX_TOPICS 65536
#define BUF 65536
#define RING 128

struct conn {
    char *in;
    size_t used;
    int topic;       /* -1 unless the connection is in a topic's list */
    int polling;     /* in the list of waiting polls, not of streams */
    int next;        /* next connection of the same list */
};

struct ring {        /* a polled topic's last RING messages */
    long long ids[RING];
    char *bodies[RING];
    size_t lengths[RING];
    long long count;
};

static struct conn conns[MAX_FD];
static int heads[MAX_TOPICS];
static int waiting[MAX_TOPICS];
static struct ring *rings[MAX_TOPICS];
static long long sequence;

static int topic_of(const char *line, const char *end) {
    const char *p = memmem(line, (size_t)(end - line), "topic=bench/", 12);
    if (!p) return -1;
    int topic = atoi(p + 12);
    return topic >= 0 && topic < MAX_TOPICS ? topic : -1;
}

static void drop(int epfd, int fd) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd].in);
    conns[fd].in = NULL;
    if (conns[fd].topic >= 0) {  /* unlink from its topic */
        int *link = conns[fd].polling ? &waiting[conns[fd].topic] : &heads[conns[fd].topic];
        while (*link >= 0 && *link != fd) link = &conns[*link].next;
        if (*link == fd) *link = conns[fd].next;
    }
    conns[fd].topic = -1;
}

static void fan_out(int topic, const char *body, size_t length) {
    static char event[BUF + 64];
    int head = snprintf(event, 64, "id: %lld\ndata: ", ++sequence);
    memcpy(event + head, body, length);
    memcpy(event + head + length, "\n\n", 2);
    size_t total = (size_t)head + length + 2;
    for (int fd = heads[topic]; fd >= 0; fd = conns[fd].next) {
        if (write(fd, event, total) < 0) { /* a full or closed stream: its reader counts the loss */ }
    }
}

/* Answers a poll with what the topic's ring holds after `after`; returns 0 when there is nothing yet. */
static int answer_poll(int fd, int topic, long long after) {
    static char answer[RING * (BUF / 64) + 256], body[RING * (BUF / 64)];
    struct ring *r = rings[topic];
    if (!r || r->count == 0 || r->ids[(r->count - 1) % RING] <= after) return 0;
    size_t used = (size_t)snprintf(body, 32, "{\"messages\":[");
    long long first = r->count > RING ? r->count - RING : 0, last = 0;
    for (long long i = first; i < r->count; i++) {
        int slot = (int)(i % RING);
        if (r->ids[slot] <= after || used + r->lengths[slot] + 64 > sizeof body) continue;
        used += (size_t)snprintf(body + used, 64, "%s{\"id\":\"%lld\",\"payload\":\"", used > 13 ? "," : "", r->ids[slot]);
        memcpy(body + used, r->bodies[slot], r->lengths[slot]);
        used += r->lengths[slot];
        memcpy(body + used, "\"}", 2);
        used += 2;
        last = r->ids[slot];
    }
    memcpy(body + used, "]}", 2);
    used += 2;
    int head = snprintf(answer, 256, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLast-Event-ID: %lld\r\n"
                        "Content-Length: %zu\r\n\r\n", last, used);
    memcpy(answer + head, body, used);
    if (write(fd, answer, (size_t)head + used) < 0) { /* its reader counts the loss */ }
    return 1;
}

static void keep_and_answer_polls(int topic, const char *body, size_t length) {
    struct ring *r = rings[topic];
    if (!r) return;  /* never polled */
    int slot = (int)(r->count % RING);
    free(r->bodies[slot]);
    r->bodies[slot] = malloc(length);
    memcpy(r->bodies[slot], body, length);
    r->lengths[slot] = length;
    r->ids[slot] = sequence;
    r->count++;
    for (int fd = waiting[topic], next; fd >= 0; fd = next) {
        next = conns[fd].next;
        answer_poll(fd, topic, sequence - 1);
        conns[fd].topic = -1;
        conns[fd].polling = 0;
    }
    waiting[topic] = -1;
}

/* Handles every complete request in the connection's buffer; returns -1 to close it. */
static int serve(int fd) {
    struct conn *c = &conns[fd];
    static const char stream_head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n";
    static const char published[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"published\":1}";
    size_t offset = 0;
    for (;;) {
        char *start = c->in + offset;
        char *end = memmem(start, c->used - offset, "\r\n\r\n", 4);
        if (!end) break;
        char *eol = memmem(start, (size_t)(end - start), "\r\n", 2);
        if (!eol) eol = end;
        int topic = topic_of(start, eol);
        size_t head = (size_t)(end + 4 - start);
        if (strncmp(start, "POST ", 5) == 0) {
            char *cl = memmem(start, head, "Content-Length:", 15);
            size_t length = cl ? strtoul(cl + 15, NULL, 10) : 0;
            if (c->used - offset < head + length) break;
            if (length > BUF || topic < 0) return -1;
            if (write(fd, published, sizeof published - 1) < 0) return -1;
            fan_out(topic, start + head, length);
            keep_and_answer_polls(topic, start + head, length);
            offset += head + length;
        } else if (strncmp(start, "GET ", 4) == 0 && topic >= 0 && c->topic < 0 && memmem(start, (size_t)(eol - start), "mode=longpoll", 13)) {
            if (!rings[topic]) rings[topic] = calloc(1, sizeof(struct ring));
            char *cursor = memmem(start, (size_t)(eol - start), "last_event_id=", 14);
            long long after = cursor ? atoll(cursor + 14) : sequence;
            if (!answer_poll(fd, topic, after)) {
                c->topic = topic;
                c->polling = 1;
                c->next = waiting[topic];
                waiting[topic] = fd;
            }
            offset += head;
        } else if (strncmp(start, "GET ", 4) == 0 && topic >= 0 && c->topic < 0) {
            if (write(fd, stream_head, sizeof stream_head - 1) < 0) return -1;
            c->topic = topic;
            c->polling = 0;
            c->next = heads[topic];
            heads[topic] = fd;
            offset += head;
        } else {
            return -1;
        }
    }
    memmove(c->in, c->in + offset, c->used - offset);
    c->used -= offset;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: push-floor PORT\n"); return 2; }
    for (int i = 0; i < MAX_TOPICS; i++) heads[i] = waiting[i] = -1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 4096)) { perror("listen"); return 1; }
    int epfd = epoll_create1(0);
    struct epoll_event event = { .events = EPOLLIN, .data.fd = listener };
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &event);
    struct epoll_event ready[256];
    for (;;) {
        int n = epoll_wait(epfd, ready, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (client >= MAX_FD) { close(client); continue; }
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conns[client] = (struct conn){ .in = malloc(BUF), .used = 0, .topic = -1, .polling = 0, .next = -1 };
                    struct epoll_event client_event = { .events = EPOLLIN, .data.fd = client };
                    epoll_ctl(epfd, EPOLL_CTL_ADD, client, &client_event);
                }
                continue;
            }
            struct conn *c = &conns[fd];
            ssize_t got = read(fd, c->in + c->used, BUF - c->used);
            if (got < 0 && errno == EAGAIN) continue;
            if (got > 0) c->used += (size_t)got;
            if (got <= 0 || serve(fd) < 0) drop(epfd, fd);
        }
    }
}
