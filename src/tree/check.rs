//! The structural invariant check of the tree, for tests and fuzzing.
//!
//! Walks the whole tree iteratively (deep trees must not overflow the stack)
//! and reports the first violated invariant with the path where it sits.

use super::node::{Inner, LARGE_MIN, Layout, MEDIUM_MAX, MEDIUM_MIN, SMALL_MAX};
use super::slot::EntryRef;

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
        let n = node.num_children();
        match &node.layout {
            Layout::Small { keys, len } => {
                let len = usize::from(*len);
                if len > SMALL_MAX || len > node.slots().len() || len != n {
                    return Err(format!("small node with {len} children"));
                }
                if keys[..len].windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("small node keys not sorted at path {path:?}"));
                }
                if node.slots()[..len].iter().any(Option::is_none)
                    || node.slots()[len..].iter().any(Option::is_some)
                {
                    return Err(format!("small node slots not compact at path {path:?}"));
                }
            }
            Layout::Medium { index, len } => {
                let len = usize::from(*len);
                if len <= MEDIUM_MIN || len > MEDIUM_MAX || len > node.slots().len() {
                    return Err(format!("medium node with {len} children"));
                }
                let mut seen = vec![false; len];
                for (b, &i) in index.iter().enumerate() {
                    if i == 0 {
                        continue;
                    }
                    let i = usize::from(i) - 1;
                    if i >= len || seen[i] || node.slots()[i].is_none() {
                        return Err(format!("medium index broken at byte {b}"));
                    }
                    seen[i] = true;
                }
                if seen.iter().any(|s| !s) || node.slots()[len..].iter().any(Option::is_some) {
                    return Err("medium node has an unindexed slot".into());
                }
            }
            Layout::Large { len } => {
                let filled = node.slots().iter().filter(|s| s.is_some()).count();
                if filled != usize::from(*len) || node.slots().len() != 256 {
                    return Err("large node length mismatch".into());
                }
                if filled <= LARGE_MIN {
                    return Err(format!("large node with {filled} children"));
                }
            }
        }
        let children = node.children();
        if children.len() != n {
            return Err(format!(
                "{} children reachable, {n} counted",
                children.len()
            ));
        }
        for (b, slot) in children {
            count += slot.count();
            let mut child_path = path.clone();
            child_path.push(b);
            match slot.get() {
                EntryRef::Leaf(l) => {
                    if !l.key().starts_with(&child_path) {
                        return Err(format!("leaf {:?} misplaced under {child_path:?}", l.key()));
                    }
                }
                EntryRef::Inner(n) => stack.push((n, child_path, false)),
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

/// The shape of the subtree under `root`, one line per inner node in
/// depth-first order: path, prefix, layout, key count, whether it has a
/// terminal, and its children's bytes (for comparing two trees' shapes).
pub(crate) fn shape<V>(root: Option<&Inner<V>>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<(&Inner<V>, Vec<u8>)> = root.map(|r| (r, Vec::new())).into_iter().collect();
    while let Some((node, mut path)) = stack.pop() {
        let kind = match node.layout {
            Layout::Small { .. } => "small",
            Layout::Medium { .. } => "medium",
            Layout::Large { .. } => "large",
        };
        let children = node.children();
        let bytes: Vec<u8> = children.iter().map(|(b, _)| *b).collect();
        out.push(format!(
            "{path:?} prefix {:?} {kind} count {} terminal {} children {bytes:?}",
            &*node.prefix,
            node.count,
            node.terminal.is_some()
        ));
        path.extend_from_slice(&node.prefix);
        for (b, slot) in children.into_iter().rev() {
            if let EntryRef::Inner(n) = slot.get() {
                let mut p = path.clone();
                p.push(b);
                stack.push((n, p));
            }
        }
    }
    out
}
