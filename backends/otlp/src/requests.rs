//! A flush's points as OTLP requests: at most `batch_size` data points
//! each, grouped into resources (one per `host.name` when sources go there),
//! the backend's instrumentation scope, and metrics (one per name and type
//! in a run of points).

use crate::series::{Data as PointData, Point, Shape};
use crate::settings::Temporality;
use crate::wire::{
    attribute, AggregationTemporality, Data, ExponentialHistogram, ExportMetricsServiceRequest,
    Gauge, Histogram, InstrumentationScope, KeyValue, Metric, Resource, ResourceMetrics,
    ScopeMetrics, Sum,
};
use zibrato_push::{Batch, Cutoff};

/// The instrumentation scope's name.
pub const SCOPE_NAME: &str = "zibrato";

/// One request's worth of data points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Points {
    request: ExportMetricsServiceRequest,
    points: usize,
}

impl Points {
    /// A batch holding `request`.
    pub fn new(request: ExportMetricsServiceRequest) -> Points {
        Points {
            points: crate::wire::data_points(&request),
            request,
        }
    }

    /// The request carrying them.
    pub fn request(&self) -> &ExportMetricsServiceRequest {
        &self.request
    }
}

impl Batch for Points {
    fn len(&self) -> usize {
        self.points
    }

    fn drop_too_old(&mut self, cutoff: &Cutoff) -> usize {
        let gone = crate::wire::retain_points(&mut self.request, |t| !cutoff.too_old_nanos(t));
        self.points -= gone;
        gone
    }
}

/// What every request says of where its points come from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The resource's attributes (`service.name` among them).
    pub resource: Vec<KeyValue>,
    /// The temporality of sums and histograms.
    pub temporality: Temporality,
}

impl Origin {
    fn resource(&self, host: Option<&str>) -> Resource {
        let mut attributes = self.resource.clone();
        if let Some(host) = host {
            attributes.retain(|kv| kv.key != "host.name");
            attributes.push(attribute("host.name", host));
        }
        Resource {
            attributes,
            ..Default::default()
        }
    }

    fn scope() -> InstrumentationScope {
        InstrumentationScope {
            name: SCOPE_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }
    }

    fn temporality(&self) -> i32 {
        match self.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative as i32,
            Temporality::Delta => AggregationTemporality::Delta as i32,
        }
    }

    fn metric(&self, name: &str, shape: Shape) -> Metric {
        let temporality = self.temporality();
        let data = match shape {
            Shape::MonotonicSum | Shape::Sum => Data::Sum(Sum {
                data_points: Vec::new(),
                aggregation_temporality: temporality,
                is_monotonic: shape == Shape::MonotonicSum,
            }),
            Shape::Gauge => Data::Gauge(Gauge::default()),
            Shape::Exponential(_) => Data::ExponentialHistogram(ExponentialHistogram {
                data_points: Vec::new(),
                aggregation_temporality: temporality,
            }),
            Shape::Histogram(_) => Data::Histogram(Histogram {
                data_points: Vec::new(),
                aggregation_temporality: temporality,
            }),
        };
        Metric {
            name: name.to_string(),
            unit: shape.unit().to_string(),
            data: Some(data),
            ..Default::default()
        }
    }

    /// `points` (sorted by resource, type and name, as the store gives
    /// them) in requests of at most `batch_size` data points.
    pub fn batches(&self, points: Vec<Point>, batch_size: usize) -> Vec<Points> {
        let mut batches = Vec::with_capacity(points.len().div_ceil(batch_size.max(1)));
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            let mut request = ExportMetricsServiceRequest::default();
            // The host of each of the request's resources.
            let mut hosts: Vec<Option<String>> = Vec::new();
            let mut n = 0;
            while n < batch_size {
                let Some(point) = points.next() else { break };
                self.push(&mut request, &mut hosts, point);
                n += 1;
            }
            batches.push(Points { request, points: n });
        }
        batches
    }

    /// Adds a point to the last metric of the last resource if it is the
    /// point's, else to a new one.
    fn push(
        &self,
        request: &mut ExportMetricsServiceRequest,
        hosts: &mut Vec<Option<String>>,
        point: Point,
    ) {
        if hosts.is_empty() || hosts.last() != Some(&point.host) {
            hosts.push(point.host.clone());
            request.resource_metrics.push(ResourceMetrics {
                resource: Some(self.resource(point.host.as_deref())),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(Origin::scope()),
                    ..Default::default()
                }],
                schema_url: String::new(),
            });
        }
        let metrics = &mut request
            .resource_metrics
            .last_mut()
            .expect("a resource was just pushed")
            .scope_metrics[0]
            .metrics;
        let same_metric = metrics
            .last()
            .is_some_and(|m| m.name == point.name && shape_of(m) == Some(point.shape));
        if !same_metric {
            metrics.push(self.metric(&point.name, point.shape));
        }
        let metric = metrics.last_mut().expect("a metric was just pushed");
        match (&mut metric.data, point.data) {
            (Some(Data::Sum(s)), PointData::Number(p)) => s.data_points.push(p),
            (Some(Data::Gauge(g)), PointData::Number(p)) => g.data_points.push(p),
            (Some(Data::ExponentialHistogram(h)), PointData::Exponential(p)) => {
                h.data_points.push(p)
            }
            (Some(Data::Histogram(h)), PointData::Histogram(p)) => h.data_points.push(p),
            _ => unreachable!("a point's shape matches its data"),
        }
    }
}

fn shape_of(metric: &Metric) -> Option<Shape> {
    Some(match metric.data.as_ref()? {
        Data::Sum(s) if s.is_monotonic => Shape::MonotonicSum,
        Data::Sum(_) => Shape::Sum,
        Data::Gauge(_) => Shape::Gauge,
        Data::ExponentialHistogram(_) => Shape::Exponential(metric.unit == "s"),
        Data::Histogram(_) => Shape::Histogram(metric.unit == "s"),
        Data::Summary(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{number_data_point, NumberDataPoint};

    fn point(name: &str, shape: Shape, host: Option<&str>, time: u64) -> Point {
        Point {
            name: name.into(),
            shape,
            host: host.map(str::to_string),
            data: PointData::Number(NumberDataPoint {
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(1.0)),
                ..Default::default()
            }),
        }
    }

    fn origin() -> Origin {
        Origin {
            resource: vec![
                attribute("host.name", "from-the-table"),
                attribute("service.name", "zibrato"),
            ],
            temporality: Temporality::Delta,
        }
    }

    #[test]
    fn runs_of_one_name_and_type_share_a_metric_and_batches_keep_their_size() {
        let points = vec![
            point("a", Shape::MonotonicSum, None, 1),
            point("a", Shape::MonotonicSum, None, 2),
            point("a", Shape::Gauge, None, 3),
            point("b", Shape::Gauge, None, 4),
            point("b", Shape::Gauge, None, 5),
        ];
        let batches = origin().batches(points, 3);
        assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), [3, 2]);
        let first = &batches[0].request().resource_metrics[0].scope_metrics[0];
        assert_eq!(first.scope.as_ref().unwrap().name, "zibrato");
        let shapes: Vec<(String, Option<Shape>)> = first
            .metrics
            .iter()
            .map(|m| (m.name.clone(), shape_of(m)))
            .collect();
        assert_eq!(
            shapes,
            [
                ("a".into(), Some(Shape::MonotonicSum)),
                ("a".into(), Some(Shape::Gauge))
            ]
        );
        let Some(Data::Sum(s)) = &first.metrics[0].data else {
            panic!()
        };
        assert_eq!(
            s.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        assert_eq!(s.data_points.len(), 2);
        assert!(origin().batches(Vec::new(), 3).is_empty());
    }

    #[test]
    fn each_source_gets_a_resource_whose_host_name_it_is() {
        let points = vec![
            point("a", Shape::Gauge, None, 1),
            point("a", Shape::Gauge, Some("web1"), 2),
            point("a", Shape::Gauge, Some("web2"), 3),
        ];
        let batches = origin().batches(points, 10);
        let hosts: Vec<Vec<String>> = batches[0]
            .request()
            .resource_metrics
            .iter()
            .map(|r| {
                r.resource
                    .as_ref()
                    .unwrap()
                    .attributes
                    .iter()
                    .filter(|kv| kv.key == "host.name")
                    .map(|kv| format!("{:?}", kv.value.as_ref().unwrap().value.as_ref().unwrap()))
                    .collect()
            })
            .collect();
        // The table's host.name is the resource of points without a source;
        // a source replaces it.
        assert_eq!(hosts.len(), 3);
        assert!(hosts[0][0].contains("from-the-table"), "{hosts:?}");
        assert!(
            hosts[1].len() == 1 && hosts[1][0].contains("web1"),
            "{hosts:?}"
        );
        assert!(
            hosts[2].len() == 1 && hosts[2][0].contains("web2"),
            "{hosts:?}"
        );
    }
}
