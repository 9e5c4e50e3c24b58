//! The precomputed longest-prefix-match structure: a digit trie laid out flat, breadth-first,
//! with every node pointing at the ranked candidate list that applies to numbers ending their
//! walk there.
//!
//! A node is 12 bytes: a 10-bit child mask, the index of its first child (children of a node
//! are contiguous, so child `d` is at `first_child + popcount(mask & ((1 << d) − 1))`), and a
//! range in the shared candidate pool. Nodes without rates of their own inherit their parent's
//! range, so a lookup is just the walk: no backtracking, no allocation, no hashing. Identical
//! candidate lists are stored once.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use crate::number::Prefix;
use crate::table::{Candidate, MAX_CANDIDATES};

/// One trie node, 12 bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    /// Index of the first child in `nodes`.
    first_child: u32,
    /// Start of this node's candidate list in `cands`.
    cand_start: u32,
    /// Bit `d` set when the node has a child for digit `d`.
    mask: u16,
    /// Length of the candidate list (≤ [`MAX_CANDIDATES`]).
    cand_len: u8,
    /// Length of the longest rate prefix on the path to this node (0: none).
    match_len: u8,
}

/// Flat digit trie with ranked candidate lists.
#[derive(Debug, Default)]
pub(crate) struct PrefixTrie {
    /// Nodes in breadth-first order; the root is at 0.
    nodes: Box<[Node]>,
    /// Every distinct candidate list, concatenated.
    cands: Box<[Candidate]>,
    /// Number of distinct prefixes that carry rates.
    prefixes: usize,
    /// Shortcut for the first `stride` digits: entry `v` (the digits as a number) holds the
    /// deepest node reached by walking them, as `index | depth << 28`. Replaces the first
    /// `stride` dependent loads of the walk with one.
    jump: Box<[u32]>,
    /// Digits covered by `jump` (0: no jump table, for small tries).
    stride: u8,
}

/// Bits of a jump entry holding the node index.
const JUMP_INDEX_BITS: u32 = 28;

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

        // Breadth-first layout: children of a node are contiguous.
        let mut order: Vec<u32> = Vec::with_capacity(temp.len());
        order.push(0);
        let mut nodes = Vec::with_capacity(temp.len());
        let mut i = 0;
        while let Some(&old) = order.get(i) {
            let first_child = order.len() as u32;
            let mut mask = 0u16;
            if let Some(t) = temp.get(old as usize) {
                for (d, &child) in t.children.iter().enumerate() {
                    if child != 0 {
                        mask |= 1 << d;
                        order.push(child);
                    }
                }
            }
            let (cand_start, cand_len, match_len) =
                ranges.get(old as usize).copied().unwrap_or((0, 0, 0));
            nodes.push(Node {
                first_child,
                cand_start,
                mask,
                cand_len,
                match_len,
            });
            i += 1;
        }
        let mut trie = Self {
            nodes: nodes.into_boxed_slice(),
            cands: pool.into_boxed_slice(),
            prefixes,
            jump: Box::default(),
            stride: 0,
        };
        trie.build_jump();
        trie
    }

    /// Sizes the jump table to the trie: 10^6 entries (4 MB) for big tables, 10^4 for
    /// medium ones, none for small ones.
    fn build_jump(&mut self) {
        let stride: u32 = match self.nodes.len() {
            n if n >= 1 << JUMP_INDEX_BITS => 0,
            n if n > 100_000 => 6,
            n if n > 5_000 => 4,
            _ => 0,
        };
        if stride == 0 {
            return;
        }
        let size = 10usize.pow(stride);
        let mut jump = Vec::with_capacity(size);
        let mut digits = [0u8; 8];
        for v in 0..size {
            let mut x = v;
            for d in digits.iter_mut().take(stride as usize).rev() {
                *d = b'0' + (x % 10) as u8;
                x /= 10;
            }
            let (idx, depth) = self.walk(0, digits.get(..stride as usize).unwrap_or(&[]));
            jump.push(idx | (depth << JUMP_INDEX_BITS));
        }
        self.jump = jump.into_boxed_slice();
        self.stride = stride as u8;
    }

    /// Walks `digits` from node `start`; returns the deepest node reached and how many digits
    /// were consumed.
    #[inline]
    fn walk(&self, start: u32, digits: &[u8]) -> (u32, u32) {
        let mut idx = start;
        let mut used = 0;
        for &b in digits {
            let Some(node) = self.nodes.get(idx as usize) else {
                break;
            };
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            let bit = 1u16 << d;
            if node.mask & bit == 0 {
                break;
            }
            idx = node.first_child + (node.mask & (bit - 1)).count_ones();
            used += 1;
        }
        (idx, used)
    }

    /// Longest-prefix match: the matched prefix length (0 if none) and the ranked candidates.
    #[inline]
    pub(crate) fn lookup(&self, digits: &[u8]) -> (u8, &[Candidate]) {
        let stride = usize::from(self.stride);
        let mut idx = 0u32;
        let mut rest = digits;
        if let (Some(head), Some(tail)) = (digits.get(..stride), digits.get(stride..)) {
            if stride > 0 {
                let v = head.iter().fold(0usize, |v, b| {
                    v * 10 + usize::from(b.wrapping_sub(b'0') % 10)
                });
                let entry = self.jump.get(v).copied().unwrap_or(0);
                idx = entry & ((1 << JUMP_INDEX_BITS) - 1);
                // A walk that stopped inside the stride cannot go deeper.
                rest = if (entry >> JUMP_INDEX_BITS) as usize == stride {
                    tail
                } else {
                    &[]
                };
            }
        }
        let (idx, _) = self.walk(idx, rest);
        let Some(node) = self.nodes.get(idx as usize) else {
            return (0, &[]);
        };
        let start = node.cand_start as usize;
        let list = self
            .cands
            .get(start..start + usize::from(node.cand_len))
            .unwrap_or(&[]);
        (node.match_len, list)
    }

    /// Heap bytes owned by the trie.
    pub(crate) fn heap_size(&self) -> usize {
        std::mem::size_of_val::<[Node]>(&self.nodes)
            + std::mem::size_of_val::<[Candidate]>(&self.cands)
            + std::mem::size_of_val::<[u32]>(&self.jump)
    }

    /// (nodes, stored candidates, distinct prefixes).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.nodes.len(), self.cands.len(), self.prefixes)
    }
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
    use crate::money::Price;
    use crate::table::CarrierId;

    /// The jump table must give exactly what the plain walk from the root gives.
    #[test]
    fn jump_table_matches_plain_walk() {
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
        let trie = PrefixTrie::build(entries, |c| (c.cost, c.carrier));
        assert!(trie.stride > 0, "big enough for a jump table");
        for _ in 0..20_000 {
            let len = 1 + (next() % 12) as usize;
            let digits: Vec<u8> = (0..len).map(|_| b'0' + (next() % 10) as u8).collect();
            let (idx, _) = trie.walk(0, &digits);
            let node = trie.nodes[idx as usize];
            let plain = (
                node.match_len,
                &trie.cands[node.cand_start as usize..][..usize::from(node.cand_len)],
            );
            assert_eq!(
                trie.lookup(&digits),
                plain,
                "{:?}",
                std::str::from_utf8(&digits)
            );
        }
    }
}
