//! The kubelet HTTPS client (filled in part 2).
