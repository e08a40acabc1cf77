//! isinbeat: periodic downloads of ISIN lists, their schedules and runs, and an admin to steer
//! and browse them — one binary, one database.
//!
//! Layers point one way: `web` → `auth` / `scheduler` / `jobs` / `alerts` → `queue` → `models` →
//! `domain`, with `db` underneath the models; `browse` (what the ISIN pages and the API read)
//! sits between `web` and `models`.

pub mod alerts;
pub mod auth;
pub mod browse;
pub mod commands;
pub mod config;
pub mod db;
pub mod domain;
pub mod import;
pub mod jobs;
pub mod models;
pub mod queue;
pub mod reconciliation;
pub mod scheduler;
pub mod sources;
pub mod startup;
pub mod telemetry;
pub mod web;

/// Every binary built on the library (the server, the benches, the tests) allocates with
/// mimalloc: rows allocated on an import's reading thread are freed on the thread that sorts
/// them, which glibc's allocator serialises on a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
