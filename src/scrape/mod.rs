//! Getting samples out of kubelets: the `/metrics/resource` text parser
//! (pure) and, beside it, the client that fetches the text.

pub mod parse;
