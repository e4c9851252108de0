//! Getting samples out of kubelets: when to scrape (`scheduler`), how to
//! fetch (`client`), how to read the text (`parse`, pure), and the glue that
//! stores the result (`scraper`).

pub mod client;
pub mod parse;
pub mod scheduler;
pub mod scraper;
