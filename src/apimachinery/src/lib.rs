//! Kubernetes API conventions, byte-compatible with Go's apimachinery, that
//! both the server and the simulated Kubernetes (`chaos/sim`) speak:
//!
//! - [`format`]: `resource.Quantity`, `metav1.Time` and `time.Duration` strings;
//! - [`gofloat`]: Go's `strconv.FormatFloat(v, 'g', -1, 64)`, as kubelets print samples;
//! - [`duration`]: Go `time.ParseDuration` syntax, for flags;
//! - [`query`]: query parameters as the parameter codec reads them (`watch=`);
//! - [`selector`]: label and field selectors (parse and match);
//! - [`status`]: the `Status` error body and its HTTP response.
//!
//! Pure functions and plain data; no I/O, no clock, nothing of the server.

pub mod duration;
pub mod format;
pub mod gofloat;
pub mod query;
pub mod selector;
pub mod status;

pub use duration::{GoDuration, parse_go_duration};
pub use format::UnixNanos;
