//! Load generator for a loopback cluster of `raft_node` processes.

fn main() {}
