//! Holds only tests (`tests/browser.rs`): the dashboard driven through chromedriver.
