"""A strict OTLP/HTTP metrics receiver, written from the OTLP specification
(opentelemetry.io/docs/specs/otlp, "OTLP/HTTP") and the metrics data model,
for the tests of Zibrato's otlp backend: no OpenTelemetry Collector is
packaged for the machines the tests run on.

Every request is decoded with the OpenTelemetry project's own Python
messages (PyPI `opentelemetry-proto`) and checked:

- `POST /v1/metrics`, `Content-Type: application/x-protobuf` (else 415);
- the body gunzipped when `Content-Encoding: gzip`, then a whole
  `ExportMetricsServiceRequest` (else 400);
- every resource with a string `service.name`; every scope named;
- every metric named, with one data type; sums, histograms and exponential
  histograms with a temporality; attribute keys unique;
- every data point with a time; cumulative points with a start time not
  after it;
- a cumulative series (resource, metric, attributes) keeps its start time
  (a later start at or after its last point's time is a reset, as the data
  model allows), its times never go back, a monotonic sum never goes down,
  a histogram's count never goes down;
- an exponential histogram's zero count and bucket counts add up to its
  count; an explicit histogram has one count more than bounds, bounds
  increasing, counts adding up.

A request breaking a rule is refused whole, 400 with a `google.rpc.Status`
body naming the rule; one passing is answered 200 with an empty
`ExportMetricsServiceResponse` and every point kept.

Faults are injected through `POST /control/fault` (JSON): the next request
whose metric names include `match` (any, if none is given), and that
carries at most `at_most` data points if that is given, is answered with
`status` (and `retry_after`, `message` as a Status body), or accepted with
a `partial_success` of `rejected` points, or held unanswered (`stall`);
`always` keeps the fault for every matching request. `POST /control/limit`
sets the most data points a request may carry before it is answered 413.
`GET /state` gives what was received, as JSON.

Run: `python3 collector.py`; it prints `listening PORT` once it listens on
127.0.0.1.
"""

import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2


def _status_class():
    """google.rpc.Status (google/rpc/status.proto): code = 1, message = 2.
    Declared here because `opentelemetry-proto` does not ship Google's API
    protos; `details` (3) is never sent by this receiver."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="zibrato_double/google_rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    message = fdp.message_type.add(name="Status")
    f = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", number=1, type=f.TYPE_INT32, label=f.LABEL_OPTIONAL)
    message.field.add(name="message", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


Status = _status_class()
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
STOP = threading.Event()


class Refused(Exception):
    """A request that breaks a rule: answered `status` with the reason."""

    def __init__(self, why, status=400):
        super().__init__(why)
        self.why = why
        self.status = status


def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind in ("int_value", "double_value", "bool_value"):
        return getattr(v, kind)
    raise Refused(f"attribute value of type {kind} not expected from zibrato")


def attributes(kvs, what):
    out = {}
    for kv in kvs:
        if not kv.key:
            raise Refused(f"{what}: an attribute without a key")
        if kv.key in out:
            raise Refused(f"{what}: attribute {kv.key} twice")
        out[kv.key] = any_value(kv.value)
    return out


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.points = []
        self.requests = []
        self.refused = []
        self.faults = []
        self.limit = None
        # Cumulative series: key -> {start, time, value, count}.
        self.cumulative = {}


STATE = State()


def point_record(metric, kind, temporality, monotonic, resource, p):
    rec = {
        "resource": resource,
        "name": metric.name,
        "unit": metric.unit,
        "type": kind,
        "temporality": {CUMULATIVE: "cumulative", DELTA: "delta"}.get(temporality),
        "monotonic": monotonic,
        "attributes": attributes(p.attributes, f"metric {metric.name}"),
        "start": p.start_time_unix_nano,
        "time": p.time_unix_nano,
    }
    if kind in ("sum", "gauge"):
        which = p.WhichOneof("value")
        if which is None:
            raise Refused(f"metric {metric.name}: a number point without a value")
        rec["value"] = float(getattr(p, which))
    elif kind == "exponential_histogram":
        positive, negative = list(p.positive.bucket_counts), list(p.negative.bucket_counts)
        if not -10 <= p.scale <= 20:
            raise Refused(f"metric {metric.name}: scale {p.scale} out of range")
        if p.zero_count + sum(positive) + sum(negative) != p.count:
            raise Refused(
                f"metric {metric.name}: zero_count {p.zero_count} + buckets "
                f"{sum(positive) + sum(negative)} != count {p.count}"
            )
        rec.update(
            count=p.count,
            sum=p.sum if p.HasField("sum") else None,
            min=p.min if p.HasField("min") else None,
            max=p.max if p.HasField("max") else None,
            scale=p.scale,
            zero_count=p.zero_count,
            zero_threshold=p.zero_threshold,
            positive={"offset": p.positive.offset, "counts": positive},
            negative={"offset": p.negative.offset, "counts": negative},
        )
    else:
        bounds, counts = list(p.explicit_bounds), list(p.bucket_counts)
        if len(counts) != len(bounds) + 1:
            raise Refused(f"metric {metric.name}: {len(counts)} counts for {len(bounds)} bounds")
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise Refused(f"metric {metric.name}: bounds not increasing")
        if sum(counts) != p.count:
            raise Refused(f"metric {metric.name}: bucket counts do not add up to count")
        rec.update(
            count=p.count,
            sum=p.sum if p.HasField("sum") else None,
            min=p.min if p.HasField("min") else None,
            max=p.max if p.HasField("max") else None,
            bounds=bounds,
            counts=counts,
        )
    return rec


def check(request):
    """The request's points, as records; raises Refused for a broken rule.
    The cumulative series' state is checked against a copy, kept only if the
    whole request passes."""
    records = []
    for rm in request.resource_metrics:
        resource = attributes(rm.resource.attributes, "resource")
        if not isinstance(resource.get("service.name"), str) or not resource["service.name"]:
            raise Refused("a resource without service.name")
        for sm in rm.scope_metrics:
            if not sm.scope.name:
                raise Refused("a scope without a name")
            for metric in sm.metrics:
                if not metric.name:
                    raise Refused("a metric without a name")
                kind = metric.WhichOneof("data")
                if kind not in ("sum", "gauge", "histogram", "exponential_histogram"):
                    raise Refused(f"metric {metric.name}: data {kind} not expected")
                data = getattr(metric, kind)
                temporality = getattr(data, "aggregation_temporality", None)
                if kind != "gauge" and temporality not in (CUMULATIVE, DELTA):
                    raise Refused(f"metric {metric.name}: no aggregation temporality")
                monotonic = getattr(data, "is_monotonic", False)
                if not data.data_points:
                    raise Refused(f"metric {metric.name}: no data points")
                for p in data.data_points:
                    if p.time_unix_nano == 0:
                        raise Refused(f"metric {metric.name}: a data point without a time")
                    if kind != "gauge":
                        if p.start_time_unix_nano == 0:
                            raise Refused(f"metric {metric.name}: a point without a start time")
                        if p.start_time_unix_nano > p.time_unix_nano:
                            raise Refused(f"metric {metric.name}: start time after time")
                    records.append(point_record(metric, kind, temporality, monotonic, resource, p))
    seen = dict(STATE.cumulative)
    for rec in records:
        if rec["temporality"] != "cumulative":
            continue
        key = json.dumps(
            [rec["resource"], rec["name"], rec["type"], rec["attributes"]], sort_keys=True
        )
        value = rec.get("value")
        count = rec.get("count")
        last = seen.get(key)
        if last is not None and rec["start"] != last["start"]:
            if rec["start"] < last["time"]:
                raise Refused(
                    f"metric {rec['name']}: the start time of a cumulative series moved "
                    f"from {last['start']} to {rec['start']}"
                )
            last = None  # a reset
        if last is not None:
            if rec["time"] < last["time"]:
                raise Refused(f"metric {rec['name']}: a cumulative point older than the last")
            if rec["monotonic"] and value < last["value"]:
                raise Refused(
                    f"metric {rec['name']}: a monotonic cumulative sum went down "
                    f"from {last['value']} to {value}"
                )
            if count is not None and count < last["count"]:
                raise Refused(f"metric {rec['name']}: a cumulative histogram's count went down")
        seen[key] = {"start": rec["start"], "time": rec["time"], "value": value, "count": count}
    return records, seen


def take_fault(names, points):
    with STATE.lock:
        for i, fault in enumerate(STATE.faults):
            match = fault.get("match")
            small = fault.get("at_most") is None or points <= fault["at_most"]
            if small and (match is None or any(match in n for n in names)):
                if not fault.get("always"):
                    del STATE.faults[i]
                return fault
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", content_type="application/x-protobuf", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        if self.path != "/state":
            return self.answer(404, b"no such path", "text/plain")
        with STATE.lock:
            state = {
                "points": STATE.points,
                "requests": STATE.requests,
                "refused": STATE.refused,
            }
            body = json.dumps(state).encode()
        self.answer(200, body, "application/json")

    def do_POST(self):
        body = self.body()
        if self.path == "/control/fault":
            with STATE.lock:
                STATE.faults.append(json.loads(body))
            return self.answer(204)
        if self.path == "/control/limit":
            with STATE.lock:
                STATE.limit = json.loads(body).get("points")
            return self.answer(204)
        if self.path != "/v1/metrics":
            return self.answer(404, b"no such path", "text/plain")
        log = {
            "at": time.monotonic(),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "points": 0,
            "names": [],
            "status": None,
            "fault": None,
        }
        try:
            request, names = self.decode(body)
            log["points"] = sum(
                len(getattr(m, m.WhichOneof("data")).data_points)
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.WhichOneof("data")
            )
            log["names"] = names
            fault = take_fault(names, log["points"])
            if fault is not None:
                log["fault"] = fault
                if fault.get("stall"):
                    with STATE.lock:
                        STATE.requests.append(log)
                    STOP.wait(fault.get("seconds", 3600))
                    self.close_connection = True
                    return
                if "status" in fault:
                    return self.refuse(
                        log,
                        Refused(fault.get("message", "injected"), fault["status"]),
                        fault.get("retry_after"),
                    )
            with STATE.lock:
                limit = STATE.limit
            if limit is not None and log["points"] > limit:
                raise Refused(f"request of {log['points']} data points, more than {limit}", 413)
            with STATE.lock:
                records, seen = check(request)
                STATE.cumulative = seen
                STATE.points.extend(records)
                log["status"] = 200
                STATE.requests.append(log)
            response = metrics_service_pb2.ExportMetricsServiceResponse()
            if fault is not None and "rejected" in fault:
                response.partial_success.rejected_data_points = fault["rejected"]
                response.partial_success.error_message = fault.get("message", "rejected")
            self.answer(200, response.SerializeToString())
        except Refused as refused:
            self.refuse(log, refused)

    def refuse(self, log, refused, retry_after=None):
        with STATE.lock:
            log["status"] = refused.status
            STATE.requests.append(log)
            STATE.refused.append(refused.why)
        status = Status(code=3, message=refused.why).SerializeToString()
        headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
        self.answer(refused.status, status, headers=headers)

    def decode(self, body):
        content_type = self.headers.get("Content-Type", "")
        if content_type != "application/x-protobuf":
            raise Refused(f"Content-Type {content_type!r}: only application/x-protobuf", 415)
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as e:
                raise Refused(f"Content-Encoding gzip, but the body is not gzip: {e}")
        elif encoding not in ("", "identity"):
            raise Refused(f"Content-Encoding {encoding!r} not supported", 415)
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as e:
            raise Refused(f"not an ExportMetricsServiceRequest: {e}")
        names = [m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        return request, names


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    # Stops when the test closes our stdin (or dies).
    threading.Thread(target=lambda: (sys.stdin.read(), STOP.set(), server.shutdown()), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
