//! `tapctl admin …` and the first admin at `tapctl init --admin`.

use crate::cli::AdminCommand;
use crate::print;
use crate::print::say;
use anyhow::Result;
use std::process::ExitCode;
use tapkiosk_core::Directory;
use tapkiosk_core::directory::AdminName;
use tapkiosk_core::directory::admins::Enrolment;

pub async fn run(directory: &Directory, command: AdminCommand) -> Result<ExitCode> {
    match command {
        AdminCommand::Add { name, json } => {
            let name = AdminName::parse(&name)?;
            let enrolment = directory.add_admin(&name).await?;
            enrol_code(&name, &enrolment, json.json)?;
        }
        AdminCommand::List(json) => print::admins(&directory.admins().await?, json.json)?,
        AdminCommand::Reset { name, json } => {
            let name = AdminName::parse(&name)?;
            let enrolment = directory.reset_admin(&name).await?;
            enrol_code(&name, &enrolment, json.json)?;
        }
        AdminCommand::Remove { name } => {
            let name = AdminName::parse(&name)?;
            directory.remove_admin(&name).await?;
            say!("Removed the admin {name}.");
        }
        AdminCommand::SetPin { name, pin_file } => {
            let name = AdminName::parse(&name)?;
            let pin = crate::keys::secret(pin_file.as_deref(), true, "PIN")?;
            directory.set_admin_pin(&name, &pin).await?;
            say!("Set the PIN of {name}: the admin pane opens with it.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// At `init --admin NAME`: adds that admin while the directory has none.
pub async fn first_admin(directory: &Directory, name: Option<&str>) -> Result<()> {
    if !directory.admins().await?.is_empty() {
        return Ok(());
    }
    let Some(name) = name else {
        say!("No admin can open the admin pane yet: add one with `tapctl admin add NAME`.");
        return Ok(());
    };
    let name = AdminName::parse(name)?;
    let enrolment = directory.add_admin(&name).await?;
    enrol_code(&name, &enrolment, false)
}

fn enrol_code(name: &AdminName, enrolment: &Enrolment, json: bool) -> Result<()> {
    let (code, until) = (&enrolment.code, enrolment.valid_until);
    if json {
        return print::json(&serde_json::json!({
            "admin": name,
            "enrolmentCode": code.grouped(),
            "validUntil": until,
        }));
    }
    say!(
        "Enrolment code for the admin {name}:\n\n    {}\n\n\
         At the kiosk, open the admin pane, choose \"Enrol with a code\" and type the name {name},\n\
         this code and a new PIN. The code works once, until {}.",
        code.grouped(),
        print::local(until)
    );
    Ok(())
}
