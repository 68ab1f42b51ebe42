//! # medsign-directory
//!
//! medsign directory: staff users, departments, import, integration apps, signature images.

#![forbid(unsafe_code)]

pub mod apps;
pub mod departments;
pub mod images;
pub mod import;
pub mod people;
pub mod tasks;
pub mod users;
