//! `isinbeat serve`: the admin web server (and, as later parts land, the scheduler and worker).

use crate::auth::accounts::FirstAdmin;
use crate::startup::{Application, Processes};

/// `isinbeat serve`: the web server, and unless told otherwise the scheduler and a worker.
pub async fn serve(processes: Processes) -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let bind = settings.bind.clone();
    let backend = settings.database_url.masked();
    let app = Application::build_with(settings, processes).await?;
    let host = bind.rsplit_once(':').map_or(bind.as_str(), |(host, _)| host);
    let shown_host = match host {
        "0.0.0.0" | "[::]" | "" => "127.0.0.1",
        other => other,
    };
    let url = format!("http://{shown_host}:{}/", app.port());
    if let FirstAdmin::Created { password, generated } = app.first_admin() {
        println!();
        println!("  Created the first user: admin");
        if *generated {
            println!("  Password: {password}");
            println!("  This password is shown only once. Change it under “My account” after logging in.");
        } else {
            println!("  Password: the one in ISINBEAT_ADMIN_PASSWORD");
        }
        println!("  Log in at {url}");
        println!();
    }
    let parts = match (processes.scheduler, processes.worker) {
        (true, true) => "with the scheduler and a worker",
        (true, false) => "with the scheduler, without a worker",
        (false, true) => "with a worker, without the scheduler",
        (false, false) => "web only",
    };
    println!("isinbeat is serving {url} (database: {backend}; {parts}). Press Ctrl+C to stop.");
    app.run_until_stopped().await?;
    Ok(())
}
