//! The crates' module graphs have no cycles: every module imports only modules below it.
//!
//! See `switchyard_tests::modgraph` for what counts as a use and where cycles are looked for.

use std::path::Path;

use switchyard_tests::modgraph;
use switchyard_tests::workspace_root;

fn assert_acyclic(krate: &str) {
    let src = workspace_root().join(krate).join("src");
    let graph = modgraph::read(&src).expect("sources parse");
    assert!(graph.modules.len() > 1, "{krate}: no modules found");
    let cycles = modgraph::cycles(&graph);
    let report: String = cycles.iter().map(ToString::to_string).collect();
    assert!(cycles.is_empty(), "{krate} has import cycles:\n{report}");
}

#[test]
fn gateway_modules_have_no_cycles() {
    assert_acyclic("gateway");
}

#[test]
fn ops_modules_have_no_cycles() {
    assert_acyclic("ops");
}

#[test]
fn routing_modules_have_no_cycles() {
    assert_acyclic("routing");
}

#[test]
fn protocols_modules_have_no_cycles() {
    assert_acyclic("protocols");
}

/// The check fails on a cycle, through `super::` and grouped imports alike, and ignores
/// parent/child uses and test code.
#[test]
fn the_check_finds_a_cycle() {
    let dir = std::env::temp_dir().join(format!("modgraph-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod a; pub mod b; pub mod c;\n");
    write(
        "a/mod.rs",
        "pub mod x;\nuse crate::{b::B, c};\npub struct A;\n",
    );
    write("a/x.rs", "use super::A;\n");
    write(
        "b.rs",
        "pub struct B;\n#[cfg(test)]\nmod t { use crate::c::C; }\n",
    );
    write("c.rs", "pub struct C(super::a::A);\n");
    let graph = modgraph::read(Path::new(&dir)).unwrap();
    let cycles = modgraph::cycles(&graph);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].members, ["a", "c"]);
    assert!(cycles[0].parent.is_empty());
}

/// The gateway's top-level modules in layers, bottom first: a module uses only modules of
/// lower layers. A new module must be placed here.
const GATEWAY_LAYERS: &[&[&str]] = &[
    &["domain", "number", "tls"],
    &["egress", "store", "carrier"],
    &["updates", "cluster"],
    &["dispatch"],
    &["admission"],
    &["submit"],
    &["inbound", "sip", "events", "sandbox", "handoff"],
    &["smpp", "smpp_server", "voice", "email", "chat", "flows"],
    &["api"],
    &["ui"],
    &["app"],
];

#[test]
fn gateway_modules_use_only_lower_layers() {
    let graph = modgraph::read(&workspace_root().join("gateway/src")).unwrap();
    let layer = |m: &str| GATEWAY_LAYERS.iter().position(|l| l.contains(&m));
    let mut wrong = Vec::new();
    for m in graph.modules.iter().filter_map(|m| m.first()) {
        if layer(m).is_none() {
            wrong.push(format!("crate::{m} is in no layer of GATEWAY_LAYERS"));
        }
    }
    for u in &graph.uses {
        let (Some(a), Some(b)) = (u.from.first(), u.to.first()) else {
            continue;
        };
        if let (Some(la), Some(lb)) = (layer(a), layer(b)) {
            if a != b && la <= lb {
                wrong.push(format!(
                    "{a} (layer {la}) uses {b} (layer {lb}) at {}",
                    u.at
                ));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A path through a parent's re-export (named or glob) counts as a use of the module that
/// defines the item.
#[test]
fn the_check_sees_through_re_exports() {
    let dir = std::env::temp_dir().join(format!("modgraph-re-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod p;\n");
    write("p/mod.rs", "mod x;\nmod y;\npub use x::X;\npub use y::*;\n");
    write("p/x.rs", "pub struct X(super::Y);\n");
    write("p/y.rs", "pub struct Y;\npub fn f(_: &super::X) {}\n");
    let graph = modgraph::read(Path::new(&dir)).unwrap();
    let cycles = modgraph::cycles(&graph);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].parent, ["p"]);
    assert_eq!(cycles[0].members, ["x", "y"]);
}
