//! Getting samples out of kubelets: when to scrape (`scheduler`), how to
//! fetch (`client`), how to read the text (`parse`, pure), and the glue that
//! stores the result (`scraper`), and which kubelets this replica cannot
//! reach (`failing`), reported so another holder scrapes them.

pub mod client;
pub mod failing;
pub mod parse;
pub mod scheduler;
pub mod scraper;
