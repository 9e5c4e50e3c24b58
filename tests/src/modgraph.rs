//! The module graph of a crate, read from its sources, and the import cycles in it.
//!
//! Every file under `src/` is a module (`a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`). A
//! module *uses* another when one of its paths (in a `use`, a type, an expression, a macro call
//! path) starts at `crate::`, `super::` or `self::` and names that module or something inside it.
//! Code under `#[cfg(test)]` and test-only files (`tests.rs`, `*_tests.rs`) is left out: tests
//! may reach across the layers they test.
//!
//! A path through a re-export (`pub use`, globs included) counts as a use of the module that
//! defines the item, not of the one re-exporting it: a child naming a sibling's type through
//! its parent's `pub use` uses that sibling.
//!
//! Cycles are looked for among siblings: for a use from `a::b::c` to `a::d::e`, the edge is
//! `b → d` among the children of `a`. A module using its own descendants or ancestors is how Rust
//! modules are written (a `mod.rs` re-exporting its children, a child naming its parent's types)
//! and is not an edge. A crate passes when no group of siblings has a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use syn::visit::Visit;

/// A module path inside a crate, without the leading `crate`: `["store", "sqlite"]`.
pub type ModPath = Vec<String>;

/// One place where a module uses another.
#[derive(Debug, Clone)]
pub struct Use {
    /// The module whose source holds the path.
    pub from: ModPath,
    /// The module the path leads into (the longest prefix that is a module of the crate).
    pub to: ModPath,
    /// `file:line` of the path.
    pub at: String,
}

/// The modules of a crate and the uses between them.
#[derive(Debug, Default)]
pub struct Graph {
    /// Every module with a file of its own.
    pub modules: BTreeSet<ModPath>,
    /// Every use of one module by another (within the same module excluded).
    pub uses: Vec<Use>,
}

/// A cycle among the children of one module.
#[derive(Debug)]
pub struct Cycle {
    /// The parent whose children form the cycle (empty for the crate root).
    pub parent: ModPath,
    /// The children in the cycle (a strongly connected set, sorted).
    pub members: Vec<String>,
    /// One use behind each edge inside the cycle, as `a → b (file:line)`.
    pub evidence: Vec<String>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parent = if self.parent.is_empty() {
            "crate".to_owned()
        } else {
            format!("crate::{}", self.parent.join("::"))
        };
        writeln!(f, "cycle in {parent}: {}", self.members.join(" ↔ "))?;
        for e in &self.evidence {
            writeln!(f, "    {e}")?;
        }
        Ok(())
    }
}

/// Reads the crate whose sources are in `src` (its `lib.rs` is the root; `main.rs` and
/// `bin/` are other crates and are skipped).
pub fn read(src: &Path) -> Result<Graph> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut graph = Graph::default();
    let mut parsed = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let Some(module) = module_of(rel) else {
            continue;
        };
        graph.modules.insert(module.clone());
        let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
        let ast = syn::parse_file(&text).with_context(|| format!("{}", file.display()))?;
        parsed.push((file, module, ast));
    }
    let mut exports = Exports::default();
    for (_, module, ast) in &parsed {
        exports.collect(module, &ast.items, &graph.modules);
    }
    for (file, module, ast) in parsed {
        let mut v = Visitor {
            file: file.display().to_string(),
            here: module.clone(),
            file_module: module,
            modules: &graph.modules,
            exports: &exports,
            uses: &mut graph.uses,
        };
        v.visit_file(&ast);
    }
    Ok(graph)
}

/// What each module defines and re-exports, to see through `pub use`.
#[derive(Debug, Default)]
struct Exports {
    /// Names of the items a module defines itself.
    defines: BTreeMap<ModPath, BTreeSet<String>>,
    /// `pub use` of one name: (module, name) → the absolute path it stands for.
    named: BTreeMap<(ModPath, String), Vec<String>>,
    /// `pub use path::*`: module → the modules whose items it re-exports.
    globs: BTreeMap<ModPath, Vec<ModPath>>,
}

impl Exports {
    fn collect(&mut self, module: &ModPath, items: &[syn::Item], modules: &BTreeSet<ModPath>) {
        for item in items {
            let name = match item {
                syn::Item::Const(i) => Some(&i.ident),
                syn::Item::Enum(i) => Some(&i.ident),
                syn::Item::Fn(i) => Some(&i.sig.ident),
                syn::Item::Static(i) => Some(&i.ident),
                syn::Item::Struct(i) => Some(&i.ident),
                syn::Item::Trait(i) => Some(&i.ident),
                syn::Item::Type(i) => Some(&i.ident),
                syn::Item::Use(u) if !matches!(u.vis, syn::Visibility::Inherited) => {
                    self.use_tree(module, &mut Vec::new(), &u.tree, modules);
                    None
                }
                _ => None,
            };
            if let Some(name) = name {
                self.defines
                    .entry(module.clone())
                    .or_default()
                    .insert(name.to_string());
            }
        }
    }

    fn use_tree(
        &mut self,
        module: &ModPath,
        prefix: &mut Vec<String>,
        tree: &syn::UseTree,
        modules: &BTreeSet<ModPath>,
    ) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(module, prefix, &p.tree, modules);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                if let Some(abs) = absolute(module, &path) {
                    self.named
                        .insert((module.clone(), n.ident.to_string()), abs);
                }
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                if let Some(abs) = absolute(module, &path) {
                    self.named
                        .insert((module.clone(), r.rename.to_string()), abs);
                }
            }
            syn::UseTree::Glob(_) => {
                if let Some(abs) = absolute(module, prefix) {
                    if modules.contains(&abs) {
                        self.globs.entry(module.clone()).or_default().push(abs);
                    }
                }
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(module, prefix, t, modules);
                }
            }
        }
    }

    /// The module that defines `name` as seen from `module`, if `module` re-exports it.
    fn source(
        &self,
        module: &ModPath,
        name: &str,
        modules: &BTreeSet<ModPath>,
    ) -> Option<Vec<String>> {
        if let Some(path) = self.named.get(&(module.clone(), name.to_owned())) {
            return Some(path.clone());
        }
        if self.defines.get(module).is_some_and(|d| d.contains(name)) {
            return None;
        }
        for g in self.globs.get(module).into_iter().flatten() {
            if modules.contains(g) && self.defines.get(g).is_some_and(|d| d.contains(name)) {
                let mut path = g.clone();
                path.push(name.to_owned());
                return Some(path);
            }
        }
        None
    }
}

/// A `use` path of `module` as an absolute path (without `crate`); a path that starts with
/// another name is relative to `module` (its child modules) or external (`None` is not
/// returned for those: they simply resolve to no module of the crate).
fn absolute(module: &ModPath, path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let (mut base, mut rest) = match first.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (module.clone(), &path[1..]),
        "super" => {
            let mut b = module.clone();
            b.pop();
            (b, &path[1..])
        }
        _ => (module.clone(), path),
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The cycles among siblings of the graph.
pub fn cycles(graph: &Graph) -> Vec<Cycle> {
    // parent → (child → child → uses)
    let mut groups: BTreeMap<ModPath, BTreeMap<String, BTreeMap<String, Vec<String>>>> =
        BTreeMap::new();
    for u in &graph.uses {
        let k = u.from.iter().zip(&u.to).take_while(|(a, b)| a == b).count();
        if k == u.from.len() || k == u.to.len() {
            continue; // ancestor or descendant
        }
        groups
            .entry(u.from[..k].to_vec())
            .or_default()
            .entry(u.from[k].clone())
            .or_default()
            .entry(u.to[k].clone())
            .or_default()
            .push(u.at.clone());
    }
    let mut found = Vec::new();
    for (parent, edges) in groups {
        for scc in strongly_connected(&edges) {
            let members: BTreeSet<&String> = scc.iter().collect();
            let mut evidence = Vec::new();
            for a in &scc {
                for (b, at) in edges.get(a).into_iter().flatten() {
                    if members.contains(b) {
                        evidence.push(format!("{a} → {b} ({})", at[0]));
                    }
                }
            }
            found.push(Cycle {
                parent: parent.clone(),
                members: scc,
                evidence,
            });
        }
    }
    found
}

/// The strongly connected sets of more than one node (Tarjan's algorithm).
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
        index: BTreeMap<&'a str, (usize, usize)>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, (s.next, s.next));
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(targets) = s.edges.get(v) {
            for w in targets.keys() {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low_w = s.index[w].1;
                    let e = s.index.get_mut(v).expect("visited");
                    e.1 = e.1.min(low_w);
                } else if s.on_stack.contains(w) {
                    let idx_w = s.index[w].0;
                    let e = s.index.get_mut(v).expect("visited");
                    e.1 = e.1.min(idx_w);
                }
            }
        }
        let (idx, low) = s.index[v];
        if idx == low {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// The module a file under `src` is; `None` for files that are not modules of the library
/// (`main.rs`, test-only files).
fn module_of(rel: &Path) -> Option<ModPath> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && stem == "main" {
        return None;
    }
    if stem == "tests" || stem.ends_with("_tests") {
        return None;
    }
    match stem {
        "lib" if parts.is_empty() => Some(parts),
        "mod" => Some(parts),
        _ => {
            parts.push(stem.to_owned());
            Some(parts)
        }
    }
}

struct Visitor<'a> {
    file: String,
    /// The module the code being visited is in (inline `mod x { }` blocks extend it).
    here: ModPath,
    file_module: ModPath,
    modules: &'a BTreeSet<ModPath>,
    exports: &'a Exports,
    uses: &'a mut Vec<Use>,
}

impl Visitor<'_> {
    /// Records a path given as its segments, starting with `crate`, `super` or `self`.
    fn record(&mut self, segments: &[String], line: usize) {
        let mut base: ModPath = match segments.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("self") | Some("super") => self.here.clone(),
            _ => return,
        };
        let mut rest = &segments[1..];
        if segments[0] == "super" {
            base.pop();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        let mut path = base;
        path.extend(rest.iter().cloned());
        let best = self.resolve(&path);
        if best == self.file_module {
            return;
        }
        // Inline modules have no file of their own: they count as the file's module.
        self.uses.push(Use {
            from: self.file_module.clone(),
            to: best,
            at: format!("{}:{line}", self.file),
        });
    }

    /// The module an absolute path leads into: its longest module prefix, followed through
    /// re-exports of the next name (a few hops at most).
    fn resolve(&self, path: &[String]) -> ModPath {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let mut best = Vec::new();
            let mut to = Vec::new();
            for s in &path {
                to.push(s.clone());
                if self.modules.contains(&to) {
                    best = to.clone();
                }
            }
            let Some(next) = path.get(best.len()) else {
                return best;
            };
            match self.exports.source(&best, next, self.modules) {
                Some(source) if source != path[..=best.len()] => {
                    let mut followed = source;
                    followed.extend(path[best.len() + 1..].iter().cloned());
                    path = followed;
                }
                _ => return best,
            }
        }
        Vec::new()
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let line = n.ident.span().start().line;
                prefix.push(n.ident.to_string());
                if prefix.last().is_some_and(|s| s == "self") {
                    prefix.pop();
                    let p = prefix.clone();
                    self.record(&p, line);
                } else {
                    let p = prefix.clone();
                    self.record(&p, line);
                    prefix.pop();
                }
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                let p = prefix.clone();
                self.record(&p, r.ident.span().start().line);
                prefix.pop();
            }
            syn::UseTree::Glob(g) => {
                let p = prefix.clone();
                self.record(&p, g.star_token.spans[0].start().line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_test_only(attrs) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.here.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.here.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            if let Some(first) = p.segments.first() {
                self.record(&segments, first.ident.span().start().line);
            }
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }
}
