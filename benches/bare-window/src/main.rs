//! A bare Tauri window covering the screen, as the kiosk's does: the
//! yardstick for the kiosk's start-up time and memory (scripts/bench-startup).

use tauri::{WebviewUrl, WebviewWindowBuilder};

fn main() -> tauri::Result<()> {
    tauri::Builder::default()
        .setup(|app| {
            let window =
                WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
                    .fullscreen(true)
                    .decorations(false)
                    .build()?;
            // As the kiosk does: without a window manager, fullscreen alone
            // leaves the window small.
            if let Some(monitor) = window.current_monitor()?.or(window.primary_monitor()?) {
                window.set_position(*monitor.position())?;
                window.set_size(*monitor.size())?;
            }
            Ok(())
        })
        .run(tauri::generate_context!())
}
