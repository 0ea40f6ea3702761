//! The structural invariant check of the tree, for tests and fuzzing.
//!
//! Walks the whole tree iteratively (deep trees must not overflow the stack)
//! and reports the first violated invariant with the path where it sits.

use super::node::{Children, Inner, LARGE_MIN, MEDIUM_MAX, MEDIUM_MIN, SMALL_MAX, Slot};

/// Checks the subtree under `root` (the root node of a tree).
pub(crate) fn check<V>(root: Option<&Inner<V>>) -> Result<(), String> {
    let Some(root) = root else {
        return Ok(());
    };
    if !root.prefix.is_empty() {
        return Err("root has a non-empty prefix".into());
    }
    if root.count == 0 {
        return Err("empty root node is kept (must be None)".into());
    }
    // (node, path to the node excluding its prefix, is_root)
    let mut stack: Vec<(&Inner<V>, Vec<u8>, bool)> = vec![(root, Vec::new(), true)];
    while let Some((node, mut path, is_root)) = stack.pop() {
        let at = || format!("at path {path:?}");
        if !is_root && node.num_entries() < 2 {
            return Err(format!(
                "inner node with {} entries {}",
                node.num_entries(),
                at()
            ));
        }
        path.extend_from_slice(&node.prefix);
        let mut count = 0usize;
        if let Some(t) = &node.terminal {
            if t.key() != path.as_slice() {
                return Err(format!("terminal key {:?} != path {path:?}", t.key()));
            }
            count += 1;
        }
        let children: Vec<(u8, &Slot<V>)> = match &node.children {
            Children::Small { keys, slots } => {
                if slots.len() > SMALL_MAX {
                    return Err(format!("small node with {} children", slots.len()));
                }
                if keys[..slots.len()].windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("small node keys not sorted at path {path:?}"));
                }
                keys.iter().copied().zip(slots.iter()).collect()
            }
            Children::Medium { index, slots } => {
                if slots.len() <= MEDIUM_MIN || slots.len() > MEDIUM_MAX {
                    return Err(format!("medium node with {} children", slots.len()));
                }
                let mut seen = vec![false; slots.len()];
                let mut out = Vec::new();
                for (b, &i) in index.iter().enumerate() {
                    if i == 0 {
                        continue;
                    }
                    let i = usize::from(i) - 1;
                    if i >= slots.len() || seen[i] {
                        return Err(format!("medium index broken at byte {b}"));
                    }
                    seen[i] = true;
                    out.push((b as u8, &slots[i]));
                }
                if seen.iter().any(|s| !s) {
                    return Err("medium node has an unindexed slot".into());
                }
                out
            }
            Children::Large { slots, len } => {
                let out: Vec<(u8, &Slot<V>)> = slots
                    .iter()
                    .enumerate()
                    .filter_map(|(b, s)| s.as_ref().map(|s| (b as u8, s)))
                    .collect();
                if out.len() != usize::from(*len) || slots.len() != 256 {
                    return Err("large node length mismatch".into());
                }
                if out.len() <= LARGE_MIN {
                    return Err(format!("large node with {} children", out.len()));
                }
                out
            }
        };
        for (b, slot) in children {
            count += slot.count();
            let mut child_path = path.clone();
            child_path.push(b);
            match slot {
                Slot::Leaf(l) => {
                    if !l.key().starts_with(&child_path) {
                        return Err(format!("leaf {:?} misplaced under {child_path:?}", l.key()));
                    }
                }
                Slot::Inner(n) => stack.push((n, child_path, false)),
            }
        }
        if count != node.count {
            return Err(format!(
                "count {} != actual {count} at path {path:?}",
                node.count
            ));
        }
    }
    Ok(())
}
