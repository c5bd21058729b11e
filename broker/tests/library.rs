//! The broker as a library: bind, spawn, forward, stop.

mod common;

use common::{check_info_only, free_port_pair, publisher, subscriber};
use zibrato_broker::{Broker, BrokerConfig, BrokerError, FREE_PAIR_PORTS};

/// Checks a broker's endpoints for publisher port `port`.
fn assert_endpoints(publishers: String, workers: String, port: u16) {
    assert_eq!(publishers, format!("tcp://127.0.0.1:{port}"));
    assert_eq!(workers, format!("tcp://127.0.0.1:{}", port + 1));
}

fn config(host: &str, port: u16) -> BrokerConfig {
    BrokerConfig {
        host: host.to_owned(),
        port,
        ..BrokerConfig::default()
    }
}

#[test]
fn default_config() {
    let c = BrokerConfig::default();
    assert_eq!(
        (c.host.as_str(), c.port, c.hwm),
        ("127.0.0.1", 5550, 1_000_000)
    );
}

#[test]
fn bind_spawn_forward_stop_and_rebind() {
    let port = free_port_pair();
    let broker = Broker::bind(&config("127.0.0.1", port)).expect("bind");
    assert_endpoints(broker.publisher_endpoint(), broker.worker_endpoint(), port);
    let handle = broker.spawn();
    assert_endpoints(handle.publisher_endpoint(), handle.worker_endpoint(), port);

    let ctx = zmq::Context::new();
    let publ = publisher(&ctx, &handle.publisher_endpoint());
    let sub = subscriber(&ctx, &handle.worker_endpoint(), "info|");
    check_info_only(&publ, &sub);
    handle.stop();

    // Both ports are closed once stop() returns.
    let again = Broker::bind(&config("127.0.0.1", port)).expect("rebind after stop");
    drop(again.spawn()); // dropping the handle stops it too
    Broker::bind(&config("127.0.0.1", port)).expect("rebind after drop");
}

#[test]
fn binding_the_same_port_twice_fails() {
    let port = free_port_pair();
    let _first = Broker::bind(&config("127.0.0.1", port)).expect("first bind");
    let err = Broker::bind(&config("127.0.0.1", port)).expect_err("second bind");
    assert!(matches!(err, BrokerError::Bind { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot bind tcp://127.0.0.1:{port} (publishers): Address already in use")
    );
}

#[test]
fn worker_port_in_use_names_the_worker_endpoint() {
    let port = free_port_pair();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port + 1)).expect("take port + 1");
    let err = Broker::bind(&config("127.0.0.1", port)).expect_err("bind");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot bind tcp://127.0.0.1:{} (workers): ",
            port + 1
        )),
        "{text}"
    );
    // The publisher port, bound first, was released again.
    drop(std::net::TcpListener::bind(("127.0.0.1", port)).expect("publisher port free"));
    drop(_taken);
    Broker::bind(&config("127.0.0.1", port)).expect("both ports free now");
}

#[test]
fn ports_0_and_65535_are_rejected() {
    for port in [0, u16::MAX] {
        let err = Broker::bind(&config("127.0.0.1", port)).expect_err("invalid port");
        assert!(matches!(err, BrokerError::InvalidPort { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with(&format!("invalid port {port}: ")));
    }
}

#[test]
fn negative_hwm_is_rejected() {
    let c = BrokerConfig {
        hwm: -1,
        ..config("127.0.0.1", free_port_pair())
    };
    let err = Broker::bind(&c).expect_err("negative hwm");
    assert!(matches!(err, BrokerError::InvalidHwm(-1)), "{err:?}");
}

#[test]
fn unresolvable_host_is_named() {
    let err = Broker::bind(&config("no-such-host.invalid", free_port_pair())).expect_err("bind");
    assert!(matches!(err, BrokerError::Resolve { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("cannot resolve host \"no-such-host.invalid\": "),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn host_names_are_resolved() {
    let port = free_port_pair();
    let broker = Broker::bind(&config("localhost", port)).expect("bind localhost");
    assert_eq!(
        broker.publisher_endpoint(),
        format!("tcp://127.0.0.1:{port}")
    );
}

#[test]
fn ipv6_loopback() {
    if !zibrato_testkit::ipv6_loopback_available("ipv6_loopback") {
        return;
    }
    let port = free_port_pair();
    let handle = Broker::bind(&config("::1", port))
        .expect("bind ::1")
        .spawn();
    assert_eq!(handle.publisher_endpoint(), format!("tcp://[::1]:{port}"));
    assert_eq!(
        handle.worker_endpoint(),
        format!("tcp://[::1]:{}", port + 1)
    );
    let ctx = zmq::Context::new();
    let publ = publisher(&ctx, &handle.publisher_endpoint());
    let sub = subscriber(&ctx, &handle.worker_endpoint(), "info|");
    check_info_only(&publ, &sub);
}

#[test]
fn any_free_pair_binds_adjacent_ports_below_the_ephemeral_range_and_says_which() {
    let first = Broker::bind_any(&BrokerConfig::default()).expect("a free pair");
    let second = Broker::bind_any(&BrokerConfig::default()).expect("another free pair");
    assert_ne!(first.publisher_port(), second.publisher_port());
    for broker in [&first, &second] {
        let port = broker.publisher_port();
        assert!(FREE_PAIR_PORTS.contains(&port), "{port}");
        assert_eq!(broker.worker_port(), port + 1);
        assert_endpoints(broker.publisher_endpoint(), broker.worker_endpoint(), port);
    }
    let port = first.publisher_port();
    // Both ports are really bound.
    let err = Broker::bind(&config("127.0.0.1", port)).expect_err("taken");
    assert!(matches!(err, BrokerError::Bind { .. }), "{err:?}");
    assert!(std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_err());

    let handle = first.spawn();
    assert_eq!(
        (handle.publisher_port(), handle.worker_port()),
        (port, port + 1)
    );
    let ctx = zmq::Context::new();
    let publ = publisher(&ctx, &handle.publisher_endpoint());
    let sub = subscriber(&ctx, &handle.worker_endpoint(), "info|");
    check_info_only(&publ, &sub);
}

#[test]
fn any_free_pair_still_checks_the_host_and_high_water_mark() {
    let err = Broker::bind_any(&config("no-such-host.invalid", 0)).expect_err("bind");
    assert!(matches!(err, BrokerError::Resolve { .. }), "{err:?}");
    let err = Broker::bind_any(&BrokerConfig {
        hwm: -1,
        ..BrokerConfig::default()
    })
    .expect_err("bind");
    assert!(matches!(err, BrokerError::InvalidHwm(-1)), "{err:?}");
}

#[test]
fn a_star_binds_every_ipv4_interface() {
    let broker = Broker::bind_any(&config("*", 0)).expect("bind on *");
    let port = broker.publisher_port();
    assert_eq!(broker.publisher_endpoint(), format!("tcp://0.0.0.0:{port}"));
    assert_eq!(
        broker.worker_endpoint(),
        format!("tcp://0.0.0.0:{}", port + 1)
    );
}
