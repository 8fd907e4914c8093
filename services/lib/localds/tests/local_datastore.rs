//! The `.local` datastore against real avahi-daemons (see `lab::avahi`): each
//! method alone, exact host match, IPv6-first answers, not found within the budget, the
//! same name on two bridges (a lease naming the host, order, an address set aside), an
//! app with a static address on the second of two bridges (the settle window; a `hosts`
//! entry or a reservation confirming it), a changed app address; and hostile answers (a purpose-built responder in an app
//! namespace): the bridge's own address, another address than the sender's, a wrong
//! query id. The resolver runs as `localds resolve` inside the device namespace, as the
//! downloader's lookup does.

use lab::avahi::{App, Claim, Lab, require_root, sh};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn expect_found(r: &(i32, serde_json::Value, Duration), by: &str, ip: &str) {
    assert_eq!(r.0, 0, "not found: {}", r.1);
    assert_eq!(r.1["resolved_by"], by, "{}", r.1);
    assert_eq!(r.1["candidates"][0]["ip"], ip, "{}", r.1);
}

#[test]
fn each_method_alone_finds_the_app() {
    if !require_root("each_method_alone_finds_the_app") {
        return;
    }
    let mut lab = Lab::new(1);
    lab.app(
        0,
        5,
        &App {
            services: &["_http._tcp", "_https._tcp"],
            ..App::new("dsapp")
        },
    );
    let ip = lab.ip(0, 5);
    for method in ["a-query", "workstation", "http", "https"] {
        let r = lab.resolve("dsapp.local", method, 4000);
        expect_found(&r, method, &ip);
    }
    // All together: the A query wins.
    expect_found(
        &lab.resolve("DSAPP.local.", "a-query,workstation,http,https", 4000),
        "a-query",
        &ip,
    );
}

#[test]
fn http_alone_with_workstation_unpublished() {
    if !require_root("http_alone_with_workstation_unpublished") {
        return;
    }
    let mut lab = Lab::new(1);
    lab.app(
        0,
        6,
        &App {
            workstation: false,
            services: &["_http._tcp"],
            ..App::new("webonly")
        },
    );
    expect_found(
        &lab.resolve("webonly.local", "http", 4000),
        "http",
        &lab.ip(0, 6),
    );
    let (code, json, _) = lab.resolve("webonly.local", "workstation", 1500);
    assert_eq!(code, 1, "no workstation published: {json}");
}

#[test]
fn ipv6_answers_first_do_not_hide_the_ipv4_one() {
    if !require_root("ipv6_answers_first_do_not_hide_the_ipv4_one") {
        return;
    }
    let mut lab = Lab::new(1);
    // avahi's defaults: use-ipv6 and publish-aaaa-on-ipv4, so the fe80 AAAA comes along.
    lab.app(
        0,
        7,
        &App {
            ipv6_defaults: true,
            ..App::new("v6app")
        },
    );
    expect_found(
        &lab.resolve("v6app.local", "workstation", 4000),
        "workstation",
        &lab.ip(0, 7),
    );
}

#[test]
fn exact_host_match_and_not_found_within_the_budget() {
    if !require_root("exact_host_match_and_not_found_within_the_budget") {
        return;
    }
    let mut lab = Lab::new(1);
    lab.app(0, 8, &App::new("dsapp-2"));
    let (code, json, took) = lab.resolve("dsapp.local", "a-query,workstation,http,https", 1500);
    assert_eq!(code, 1, "dsapp-2 must not match dsapp: {json}");
    assert!(
        took < Duration::from_millis(1500 + 500 + 300),
        "reported after {took:?}"
    );
    let tried = json["tried"].as_array().map(|a| a.len()).unwrap_or(0);
    assert_eq!(tried, 4, "{json}");
    lab.stop_avahi();
    let (code, _, took) = lab.resolve("dsapp-2.local", "a-query,workstation", 2000);
    assert_eq!(code, 1);
    assert!(
        took < Duration::from_millis(2000 + 500 + 300),
        "reported after {took:?}"
    );
}

#[test]
fn the_same_name_on_two_bridges_prefers_the_lease_then_instance_order() {
    if !require_root("the_same_name_on_two_bridges_prefers_the_lease_then_instance_order") {
        return;
    }
    let mut lab = Lab::new(2);
    lab.app(0, 5, &App::new("twin"));
    lab.app(1, 5, &App::new("twin"));
    let (a, b) = (lab.ip(0, 5), lab.ip(1, 5));
    // A window long enough for both answers whatever the machine's load: this is about
    // the order among answers heard, not about how long they are waited for.
    let settled = |extra: &[String]| {
        [
            vec!["--settle".to_string(), "3s".to_string()],
            extra.to_vec(),
        ]
        .concat()
    };
    let r = lab.resolve_with("twin.local", "a-query", 4000, &settled(&[]));
    expect_found(&r, "a-query", &a);
    assert_eq!(
        r.1["candidates"][1]["ip"],
        b.as_str(),
        "the other is kept for failover: {}",
        r.1
    );
    assert!(
        r.1["warning"]
            .as_str()
            .unwrap_or("")
            .contains("several bridges"),
        "{}",
        r.1
    );
    // A lease of that address to a client of another name confirms nothing.
    lab.lease(1, &b, "someone-else");
    let r = lab.resolve_with("twin.local", "a-query", 4000, &settled(&[]));
    expect_found(&r, "a-query", &a);
    assert_eq!(r.1["candidates"][1]["leased"], false, "{}", r.1);
    lab.lease(1, &b, "twin");
    let r = lab.resolve_with("twin.local", "a-query", 4000, &settled(&[]));
    expect_found(&r, "a-query", &b);
    assert_eq!(r.1["candidates"][0]["leased"], true);
    // A retry after the leased address failed: the other bridge's answer is waited for
    // and taken, even though the one set aside is leased and answers first.
    let refused = vec!["--set-aside".to_string(), format!("{}={b}", lab.bridges[1])];
    let r = lab.resolve_with("twin.local", "a-query", 4000, &settled(&refused));
    expect_found(&r, "a-query", &a);
    // Set aside on both bridges: the best of them after all (its server may be back).
    let both = [
        refused.clone(),
        vec!["--set-aside".to_string(), format!("{}={a}", lab.bridges[0])],
    ]
    .concat();
    let r = lab.resolve_with("twin.local", "a-query", 4000, &settled(&both));
    expect_found(&r, "a-query", &b);
}

#[test]
fn two_bridges_an_app_with_a_static_address_is_confirmed_by_the_network_instance() {
    if !require_root(
        "two_bridges_an_app_with_a_static_address_is_confirmed_by_the_network_instance",
    ) {
        return;
    }
    // As a new user sets it up: two network instances, the app on the second one with an
    // address of its own (no DHCP, so no lease), every method.
    let mut lab = Lab::new(2);
    let ns = lab.app(1, 5, &App::new("static"));
    let ip = lab.ip(1, 5);
    let all = "a-query,workstation,http,https";
    // Nothing on the device vouches for it: taken when the settle window after its
    // answer is over, not when the first bridge's A query gives up (2 s).
    let r = lab.resolve("static.local", all, 4000);
    expect_found(&r, "a-query", &ip);
    assert_eq!(r.1["taken"], "settle-window", "{}", r.1);
    assert_eq!(r.1["candidates"][0]["confirmed"], serde_json::Value::Null);
    // Waiting longer than the first bridge's A query takes to give up: all heard.
    let long = ["--settle".to_string(), "3s".to_string()];
    let r = lab.resolve_with("static.local", all, 4000, &long);
    expect_found(&r, "a-query", &ip);
    assert_eq!(r.1["taken"], "all-heard", "{}", r.1);
    // A `hosts` entry of the instance naming it at that address: taken at once, even
    // with that long window.
    lab.add_to_instance(
        1,
        &format!("hosts = [{{ name = \"static\", ip = \"{ip}\" }}]"),
    );
    let r = lab.resolve_with("static.local", all, 4000, &long);
    expect_found(&r, "a-query", &ip);
    assert_eq!(r.1["taken"], "confirmed", "{}", r.1);
    assert_eq!(r.1["candidates"][0]["confirmed"], "hosts", "{}", r.1);
    assert_eq!(r.1["candidates"][0]["leased"], false, "{}", r.1);
    // A reservation (`dhcp-hosts`) of that address under its name: the same.
    let link = std::process::Command::new("ip")
        .args(["-n", &ns, "-o", "link", "show", "eth0"])
        .output()
        .expect("ip link");
    let mac = String::from_utf8_lossy(&link.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("the app's MAC")
        .to_string();
    lab.reset_instance(1);
    lab.add_to_instance(
        1,
        &format!("dhcp-hosts = [{{ mac = \"{mac}\", ip = \"{ip}\", name = \"static\" }}]"),
    );
    let r = lab.resolve_with("static.local", all, 4000, &long);
    expect_found(&r, "a-query", &ip);
    assert_eq!(r.1["taken"], "confirmed", "{}", r.1);
    assert_eq!(r.1["candidates"][0]["confirmed"], "reservation", "{}", r.1);
    // Entries for another name, or for the name at another address, confirm nothing.
    lab.reset_instance(1);
    let other = lab.ip(1, 6);
    lab.add_to_instance(
        1,
        &format!(
            "dhcp-hosts = [{{ mac = \"{mac}\", ip = \"{ip}\", name = \"someone\" }}]\n\
             hosts = [{{ name = \"static\", ip = \"{other}\" }}]"
        ),
    );
    let r = lab.resolve("static.local", all, 4000);
    expect_found(&r, "a-query", &ip);
    assert_eq!(r.1["taken"], "settle-window", "{}", r.1);
    assert_eq!(r.1["candidates"][0]["confirmed"], serde_json::Value::Null);
}

#[test]
fn a_changed_app_address_is_found_again() {
    if !require_root("a_changed_app_address_is_found_again") {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.app(0, 9, &App::new("mover"));
    expect_found(
        &lab.resolve("mover.local", "a-query", 4000),
        "a-query",
        &lab.ip(0, 9),
    );
    let (old, new) = (lab.ip(0, 9), lab.ip(0, 19));
    // Delete first: removing a primary address also removes its secondaries.
    sh(&format!(
        "ip -n {ns} addr del {old}/24 dev eth0 && ip -n {ns} addr add {new}/24 dev eth0"
    ));
    let start = Instant::now();
    loop {
        let r = lab.resolve("mover.local", "a-query", 4000);
        if r.0 == 0 && r.1["candidates"][0]["ip"] == new.as_str() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still {}", r.1);
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn ip(lab: &Lab, b: usize, last: u8) -> Ipv4Addr {
    lab.ip(b, last).parse().expect("ip")
}

#[test]
fn an_answer_with_the_bridges_own_address_is_refused() {
    if !require_root("an_answer_with_the_bridges_own_address_is_refused") {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.bare_app(0, 5);
    let (own, bridge) = (ip(&lab, 0, 5), ip(&lab, 0, 1));
    let heard = lab.responder(
        &ns,
        own,
        Claim {
            ip: bridge,
            wrong_id: false,
        },
    );
    let (code, json, _) = lab.resolve("victim.local", "a-query", 2500);
    assert!(
        heard.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the responder never heard the query"
    );
    assert_eq!(
        code, 1,
        "the device's own bridge address was taken as the app's: {json}"
    );
}

#[test]
fn answers_for_another_address_or_with_another_id_are_refused() {
    if !require_root("answers_for_another_address_or_with_another_id_are_refused") {
        return;
    }
    let mut lab = Lab::new(1);
    // One app names an address not its own; another answers with its own, under a
    // wrong query id.
    let liar = lab.bare_app(0, 5);
    let liar_ip = ip(&lab, 0, 5);
    let other = ip(&lab, 0, 9);
    let liar_heard = lab.responder(
        &liar,
        liar_ip,
        Claim {
            ip: other,
            wrong_id: false,
        },
    );
    let stray = lab.bare_app(0, 6);
    let stray_ip = ip(&lab, 0, 6);
    let stray_heard = lab.responder(
        &stray,
        stray_ip,
        Claim {
            ip: stray_ip,
            wrong_id: true,
        },
    );
    let (code, json, _) = lab.resolve("victim.local", "a-query", 2500);
    for heard in [&liar_heard, &stray_heard] {
        assert!(heard.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
    assert_eq!(code, 1, "a hostile answer was taken: {json}");
    // The real app, answering for itself, is found among them.
    lab.app(0, 7, &App::new("victim"));
    expect_found(
        &lab.resolve("victim.local", "a-query", 4000),
        "a-query",
        &lab.ip(0, 7),
    );
}

#[test]
fn an_address_set_aside_gives_way_to_another_answer_on_the_same_bridge() {
    if !require_root("an_address_set_aside_gives_way_to_another_answer_on_the_same_bridge") {
        return;
    }
    let mut lab = Lab::new(1);
    // An app claims the name for itself, at once: it may well answer before the real one.
    let impostor = lab.bare_app(0, 5);
    let impostor_ip = ip(&lab, 0, 5);
    lab.responder(
        &impostor,
        impostor_ip,
        Claim {
            ip: impostor_ip,
            wrong_id: false,
        },
    );
    lab.app(0, 7, &App::new("victim"));
    // Its answer failed a download: the real app's is taken.
    let aside = vec![
        "--set-aside".to_string(),
        format!("{}={impostor_ip}", lab.bridges[0]),
    ];
    let r = lab.resolve_with("victim.local", "a-query", 4000, &aside);
    expect_found(&r, "a-query", &lab.ip(0, 7));
}
