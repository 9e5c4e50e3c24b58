//! The precomputed longest-prefix-match structure: a digit trie whose every node already
//! knows the ranked candidate list that applies to numbers ending their walk there.
//!
//! Lookups read [`Entry`] words, each either a *leaf* (the answer: a range in the shared
//! candidate pool and the matched prefix length) or an *inner* link to a block of ten entries,
//! one per next digit. Leaves are pushed down: a digit with no deeper rates maps straight to
//! the answer, so a walk stops at the first leaf, usually one or two loads after the jump table
//! (an array of the entries reached after the first six digits). Nodes without rates of their
//! own inherit their parent's answer, so there is no backtracking, no allocation and no
//! hashing. Identical candidate lists are stored once.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use crate::candidate::{Candidate, MAX_CANDIDATES};
use crate::number::Prefix;

/// One word of the lookup structure. Bit 63 set: inner, bits 0–31 are a block index. Clear:
/// leaf, bits 0–31 are the start of the candidate list, 32–39 its length, 40–47 the matched
/// prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry(u64);

impl Entry {
    /// Tag bit of inner entries.
    const INNER: u64 = 1 << 63;
    /// No match, no candidates.
    const EMPTY: Entry = Entry(0);

    fn leaf(start: u32, len: u8, match_len: u8) -> Self {
        Self(u64::from(start) | u64::from(len) << 32 | u64::from(match_len) << 40)
    }

    fn inner(block: u32) -> Self {
        Self(Self::INNER | u64::from(block))
    }

    /// The block index of an inner entry.
    #[inline]
    fn block(self) -> Option<usize> {
        (self.0 & Self::INNER != 0).then_some(self.0 as u32 as usize)
    }

    /// (candidate start, candidate length, matched length) of a leaf.
    #[inline]
    fn unpack(self) -> (usize, usize, u8) {
        (
            self.0 as u32 as usize,
            usize::from((self.0 >> 32) as u8),
            (self.0 >> 40) as u8,
        )
    }
}

/// Flat digit trie with ranked candidate lists.
#[derive(Debug)]
pub(crate) struct PrefixTrie {
    /// One block of ten entries (by next digit) per node that has children, breadth-first;
    /// the root's is block 0.
    blocks: Box<[[Entry; 10]]>,
    /// Per block, the answer for a number that ends at its node (shorter than the prefixes
    /// under it). Kept apart so blocks stay 80 bytes.
    ends: Box<[Entry]>,
    /// Where every walk starts: inner (block 0), or a leaf for a trie without children.
    root: Entry,
    /// Every distinct candidate list, concatenated.
    cands: Box<[Candidate]>,
    /// Nodes of the trie (prefixes and the digits leading to them), for statistics.
    nodes: usize,
    /// Number of distinct prefixes that carry rates.
    prefixes: usize,
    /// Shortcut for the first `stride` digits: entry `v` (the digits as a number) is the
    /// entry reached by walking them. Replaces the first `stride` dependent loads with one.
    jump: Box<[Entry]>,
    /// Digits covered by `jump` (0: no jump table, for small tries).
    stride: u8,
}

/// Node of the build-time trie.
#[derive(Clone, Copy)]
struct TempNode {
    /// Child indices by digit, 0 = none (the root is never a child).
    children: [u32; 10],
    /// Range of this node's own rates in the sorted `owned` vector.
    own: (u32, u32),
    /// Depth = prefix length.
    depth: u8,
}

impl PrefixTrie {
    /// Builds from (prefix, candidate) pairs; at most one pair per (prefix, carrier).
    /// `rank` orders candidates within a list (smaller first).
    pub(crate) fn build<K: Ord>(
        entries: Vec<(Prefix, Candidate)>,
        rank: impl Fn(&Candidate) -> K,
    ) -> Self {
        let empty = TempNode {
            children: [0; 10],
            own: (0, 0),
            depth: 0,
        };
        let mut temp = vec![empty];
        let mut owned: Vec<(u32, Candidate)> = Vec::with_capacity(entries.len());
        for (prefix, cand) in entries {
            let mut node = 0usize;
            for (depth, b) in prefix.digits().iter().enumerate() {
                let d = usize::from(b.wrapping_sub(b'0')).min(9);
                let next = temp
                    .get(node)
                    .and_then(|n| n.children.get(d))
                    .copied()
                    .unwrap_or(0);
                node = if next != 0 {
                    next as usize
                } else {
                    let idx = temp.len();
                    temp.push(TempNode {
                        depth: depth as u8 + 1,
                        ..empty
                    });
                    if let Some(slot) = temp.get_mut(node).and_then(|n| n.children.get_mut(d)) {
                        *slot = idx as u32;
                    }
                    idx
                };
            }
            owned.push((node as u32, cand));
        }
        owned.sort_unstable_by_key(|(n, _)| *n);
        let mut prefixes = 0;
        let mut i = 0;
        while i < owned.len() {
            let node = owned.get(i).map_or(0, |o| o.0);
            let mut j = i;
            while owned.get(j).is_some_and(|o| o.0 == node) {
                j += 1;
            }
            if let Some(n) = temp.get_mut(node as usize) {
                n.own = (i as u32, j as u32);
            }
            prefixes += 1;
            i = j;
        }

        // Depth-first: compute each node's effective list from its parent's.
        let mut lists: Vec<Vec<Candidate>> = vec![Vec::new(); crate::number::MAX_DIGITS + 1];
        let mut effective = [0usize; crate::number::MAX_DIGITS + 1]; // which depth's list applies
        let mut ranges: Vec<(u32, u8, u8)> = vec![(0, 0, 0); temp.len()];
        let mut pool: Vec<Candidate> = Vec::new();
        let hasher = std::collections::hash_map::RandomState::new();
        let mut interned: HashMap<u64, Vec<(u32, u8)>> = HashMap::new();
        let mut stack: Vec<(u32, (u32, u8, u8))> = vec![(0, (0, 0, 0))];
        let mut scratch = Vec::new();
        while let Some((idx, parent_range)) = stack.pop() {
            let Some(node) = temp.get(idx as usize).copied() else {
                continue;
            };
            let depth = usize::from(node.depth);
            let range = if node.own.0 == node.own.1 {
                effective[depth] = effective[depth.saturating_sub(1)];
                parent_range
            } else {
                let own = owned
                    .get(node.own.0 as usize..node.own.1 as usize)
                    .unwrap_or(&[]);
                let mut list = std::mem::take(lists.get_mut(depth).unwrap_or(&mut scratch));
                list.clear();
                if let Some(base) = lists.get(effective[depth.saturating_sub(1)]) {
                    list.extend(
                        base.iter()
                            .filter(|c| !own.iter().any(|(_, o)| o.carrier == c.carrier)),
                    );
                }
                list.extend(own.iter().map(|(_, c)| *c));
                list.sort_unstable_by_key(|c| rank(c));
                let shown = list.get(..list.len().min(MAX_CANDIDATES)).unwrap_or(&[]);
                let (start, len) = intern(shown, &mut pool, &mut interned, &hasher);
                if let Some(slot) = lists.get_mut(depth) {
                    *slot = list;
                }
                effective[depth] = depth;
                (start, len, node.depth)
            };
            if let Some(r) = ranges.get_mut(idx as usize) {
                *r = range;
            }
            for &child in node.children.iter().rev() {
                if child != 0 {
                    stack.push((child, range));
                }
            }
        }

        // Breadth-first layout: a block per inner node, numbered in visiting order.
        let mut block_of: Vec<u32> = vec![u32::MAX; temp.len()];
        let mut order: Vec<u32> = Vec::new();
        let is_inner = |t: &TempNode| t.children.iter().any(|&c| c != 0);
        if temp.first().is_some_and(is_inner) {
            order.push(0);
        }
        let mut i = 0;
        while let Some(&old) = order.get(i) {
            if let Some(slot) = block_of.get_mut(old as usize) {
                *slot = i as u32;
            }
            if let Some(t) = temp.get(old as usize) {
                for &child in &t.children {
                    if child != 0 && temp.get(child as usize).is_some_and(is_inner) {
                        order.push(child);
                    }
                }
            }
            i += 1;
        }
        let leaf = |node: u32| {
            let (start, len, match_len) = ranges.get(node as usize).copied().unwrap_or((0, 0, 0));
            Entry::leaf(start, len, match_len)
        };
        let mut blocks = Vec::with_capacity(order.len());
        let mut ends = Vec::with_capacity(order.len());
        for &old in &order {
            let Some(t) = temp.get(old as usize) else {
                continue;
            };
            let mut block = [leaf(old); 10];
            for (slot, &child) in block.iter_mut().zip(&t.children) {
                if child != 0 {
                    *slot = match block_of.get(child as usize) {
                        Some(&b) if b != u32::MAX => Entry::inner(b),
                        _ => leaf(child),
                    };
                }
            }
            blocks.push(block);
            ends.push(leaf(old));
        }
        let root = if order.is_empty() {
            leaf(0)
        } else {
            Entry::inner(0)
        };
        let mut trie = Self {
            blocks: blocks.into_boxed_slice(),
            ends: ends.into_boxed_slice(),
            root,
            cands: pool.into_boxed_slice(),
            nodes: temp.len(),
            prefixes,
            jump: Box::default(),
            stride: 0,
        };
        trie.build_jump();
        trie
    }

    /// Sizes the jump table to the trie: 10^6 entries (8 MB) for big tables, 10^4 for
    /// medium ones, none for small ones. [`Self::lookup`] handles strides 4 and 6.
    fn build_jump(&mut self) {
        let stride: u32 = match self.nodes {
            n if n > 100_000 => 6,
            n if n > 5_000 => 4,
            _ => 0,
        };
        if stride == 0 {
            return;
        }
        let mut jump = vec![Entry::EMPTY; 10usize.pow(stride)];
        self.fill_jump(&mut jump, self.root);
        self.jump = jump.into_boxed_slice();
        self.stride = stride as u8;
    }

    /// Fills `out` (the jump entries of every digit string starting with the path to `entry`)
    /// with what a walk from the root would reach after `out.len()`'s worth of digits.
    fn fill_jump(&self, out: &mut [Entry], entry: Entry) {
        match entry.block().and_then(|b| self.blocks.get(b)) {
            Some(block) if out.len() > 1 => {
                let part = out.len() / 10;
                for (chunk, &child) in out.chunks_mut(part).zip(block) {
                    self.fill_jump(chunk, child);
                }
            }
            _ => out.fill(entry),
        }
    }

    /// Walks `digits` from `entry`: the result of the deepest node reached.
    #[inline]
    fn walk(&self, mut entry: Entry, digits: &[u8]) -> Entry {
        for &b in digits {
            let Some(block) = entry.block() else {
                return entry;
            };
            let d = usize::from(b.wrapping_sub(b'0'));
            match self.blocks.get(block) {
                Some(children) if d < 10 => entry = children[d],
                _ => return self.ends.get(block).copied().unwrap_or(Entry::EMPTY),
            }
        }
        match entry.block() {
            Some(block) => self.ends.get(block).copied().unwrap_or(Entry::EMPTY),
            None => entry,
        }
    }

    /// Longest-prefix match: the matched prefix length (0 if none) and the ranked candidates.
    /// `digits` are ASCII digits (an [`crate::E164`]'s); other bytes give a wrong answer but
    /// never a panic.
    #[inline]
    pub(crate) fn lookup(&self, digits: &[u8]) -> (u8, &[Candidate]) {
        let jumped = match self.stride {
            6 => digits
                .split_first_chunk::<6>()
                .map(|(head, tail)| (decimal(head), tail)),
            4 => digits
                .split_first_chunk::<4>()
                .map(|(head, tail)| (decimal(head), tail)),
            _ => None,
        };
        let (entry, rest) = match jumped {
            Some((v, tail)) => (self.jump.get(v).copied().unwrap_or(Entry::EMPTY), tail),
            None => (self.root, digits),
        };
        self.result(self.walk(entry, rest))
    }

    /// The match length and candidate list of a leaf entry.
    #[inline]
    fn result(&self, leaf: Entry) -> (u8, &[Candidate]) {
        let (start, len, match_len) = leaf.unpack();
        let list = self.cands.get(start..start + len).unwrap_or(&[]);
        (match_len, list)
    }

    /// Heap bytes owned by the trie.
    pub(crate) fn heap_size(&self) -> usize {
        std::mem::size_of_val::<[[Entry; 10]]>(&self.blocks)
            + std::mem::size_of_val::<[Entry]>(&self.ends)
            + std::mem::size_of_val::<[Candidate]>(&self.cands)
            + std::mem::size_of_val::<[Entry]>(&self.jump)
    }

    /// (nodes, stored candidates, distinct prefixes).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.nodes, self.cands.len(), self.prefixes)
    }
}

/// The value of `N` ASCII digits. Independent multiplications rather than a `v * 10 + d`
/// chain, so the jump index is ready a few cycles sooner.
#[inline]
fn decimal<const N: usize>(digits: &[u8; N]) -> usize {
    let mut v = 0;
    let mut weight = 1;
    for &b in digits.iter().rev() {
        v += usize::from(b.wrapping_sub(b'0')) * weight;
        weight *= 10;
    }
    v
}

/// Stores `list` in `pool` unless an identical list is already there; returns its range.
fn intern(
    list: &[Candidate],
    pool: &mut Vec<Candidate>,
    interned: &mut HashMap<u64, Vec<(u32, u8)>>,
    hasher: &impl BuildHasher,
) -> (u32, u8) {
    let mut h = hasher.build_hasher();
    list.hash(&mut h);
    let key = std::hash::Hasher::finish(&h);
    let bucket = interned.entry(key).or_default();
    for &(start, len) in bucket.iter() {
        if pool.get(start as usize..start as usize + usize::from(len)) == Some(list) {
            return (start, len);
        }
    }
    let start = pool.len() as u32;
    let len = list.len() as u8; // ≤ MAX_CANDIDATES
    pool.extend_from_slice(list);
    bucket.push((start, len));
    (start, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::CarrierId;
    use crate::money::Price;

    /// The jump table must give exactly what the plain walk from the root gives, and both
    /// what a brute-force longest-prefix scan gives.
    #[test]
    fn jump_table_matches_plain_walk_and_brute_force() {
        let mut x: u64 = 42;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut entries = Vec::new();
        for i in 0..30_000u32 {
            let len = 1 + (next() % 8) as usize;
            let digits: String = (0..len)
                .map(|k| char::from(b'0' + ((next() % 9) as u8 + u8::from(k == 0))))
                .collect();
            let cand = Candidate::for_test(
                Price::from_nanos(next() % 1000),
                CarrierId::for_test((i % 7) as u16),
            );
            entries.push((Prefix::parse(&digits).unwrap(), cand));
        }
        entries.sort_by_key(|(p, c)| (*p, c.carrier));
        entries.dedup_by_key(|(p, c)| (*p, c.carrier));
        let trie = PrefixTrie::build(entries.clone(), |c| (c.cost, c.carrier));
        assert!(trie.stride > 0, "big enough for a jump table");
        for i in 0..20_000 {
            let len = 1 + (next() % 12) as usize;
            let digits: Vec<u8> = (0..len).map(|_| b'0' + (next() % 10) as u8).collect();
            let plain = trie.result(trie.walk(trie.root, &digits));
            let found = trie.lookup(&digits);
            assert_eq!(found, plain, "{:?}", std::str::from_utf8(&digits));
            if i % 16 != 0 {
                continue;
            }
            // Brute force: per carrier, its longest matching prefix.
            let mut best: HashMap<CarrierId, (usize, Candidate)> = HashMap::new();
            for (p, c) in &entries {
                if digits.starts_with(p.digits()) {
                    let e = best.entry(c.carrier).or_insert((0, *c));
                    if p.len() >= e.0 {
                        *e = (p.len(), *c);
                    }
                }
            }
            let matched = best.values().map(|(l, _)| *l).max().unwrap_or(0);
            let mut want: Vec<Candidate> = best.into_values().map(|(_, c)| c).collect();
            want.sort_by_key(|c| (c.cost, c.carrier));
            want.truncate(MAX_CANDIDATES);
            assert_eq!(usize::from(found.0), matched);
            assert_eq!(found.1, &want[..]);
        }
    }

    #[test]
    fn small_and_empty_tries() {
        let empty = PrefixTrie::build(Vec::new(), |c| c.cost);
        assert_eq!(empty.lookup(b"4477"), (0, &[][..]));
        let c = Candidate::for_test(Price::from_nanos(5), CarrierId::for_test(0));
        let trie = PrefixTrie::build(vec![(Prefix::parse("44").unwrap(), c)], |c| c.cost);
        assert_eq!(trie.lookup(b"4"), (0, &[][..]));
        assert_eq!(trie.lookup(b"44"), (2, &[c][..]));
        assert_eq!(trie.lookup(b"447700"), (2, &[c][..]));
        assert_eq!(trie.lookup(b"33"), (0, &[][..]));
    }
}
