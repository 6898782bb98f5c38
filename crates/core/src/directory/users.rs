//! Adding, listing, changing and removing people.

use super::{Directory, DirectoryError, Tx, bulk, pass_from_row, select_passes};
use crate::audit::Event;
use crate::email::Email;
use crate::import::{ImportErrors, RowError};
use crate::user::{NewUser, UserDetail, UserSummary};
use sqlx::Row;

/// The audit event of a person added.
fn added(user: &NewUser) -> Event {
    Event::new("user_added")
        .user(&user.email)
        .with("display_name", &user.display_name)
        .with("groups", &user.groups)
}

impl Directory {
    /// Adds a person. Fails if the email is already there.
    pub async fn add_user(&self, user: &NewUser) -> Result<(), DirectoryError> {
        let mut tx = self.write_person_by_email(&user.email).await?;
        if self.find_user(&mut tx, &user.email).await?.is_some() {
            return Err(DirectoryError::UserExists(user.email.clone()));
        }
        self.insert_user(&mut tx, user).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Adds everyone in `users` (from [`crate::import::parse_users`]), or
    /// no one: any email already in the directory fails the whole import
    /// with its line number. A thousand rows to a statement (`bulk`).
    pub async fn import_users(&self, users: &[(u64, NewUser)]) -> Result<usize, DirectoryError> {
        let mut tx = self.write_people().await?;
        let emails: Vec<Email> = users.iter().map(|(_, u)| u.email.clone()).collect();
        let known = bulk::users_by_email(&mut tx, &emails).await?;
        let errors: Vec<RowError> = users
            .iter()
            .filter(|(_, user)| known.contains_key(&user.email))
            .map(|(line, user)| RowError {
                line: *line,
                message: format!("{} is already in the directory", user.email),
            })
            .collect();
        if !errors.is_empty() {
            return Err(ImportErrors(errors).into());
        }
        let now = self.now().timestamp();
        let marks = bulk::Marks::of(&tx);
        let rows: Vec<(String, &NewUser)> = users
            .iter()
            .map(|(_, user)| (uuid::Uuid::new_v4().to_string(), user))
            .collect();
        for chunk in rows.chunks(bulk::ROWS) {
            let sql = format!(
                "INSERT INTO users (id, email, display_name, enabled, created_at) VALUES {}",
                marks.rows(5, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, user) in chunk {
                query = query
                    .bind(id.as_str())
                    .bind(user.email.as_str())
                    .bind(user.display_name.as_deref())
                    .bind(1_i64)
                    .bind(now);
            }
            query.execute(&mut *tx).await?;
        }
        let memberships: Vec<(&str, &String)> = rows
            .iter()
            .flat_map(|(id, user)| user.groups.iter().map(move |g| (id.as_str(), g)))
            .collect();
        for chunk in memberships.chunks(bulk::ROWS) {
            let sql = format!(
                "INSERT INTO user_groups (user_id, group_name) VALUES {}",
                marks.rows(2, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, group) in chunk {
                query = query.bind(*id).bind(group.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        let events: Vec<Event> = users.iter().map(|(_, user)| added(user)).collect();
        self.audit_all(&mut tx, &events).await?;
        crate::crash::point("importing");
        self.commit(tx).await?;
        Ok(users.len())
    }

    async fn insert_user(&self, tx: &mut Tx, user: &NewUser) -> Result<(), DirectoryError> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO users (id, email, display_name, enabled, created_at) VALUES ($1, $2, $3, 1, $4)")
            .bind(&id)
            .bind(user.email.as_str())
            .bind(user.display_name.clone())
            .bind(self.now().timestamp())
            .execute(&mut **tx)
            .await?;
        for group in &user.groups {
            sqlx::query("INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2)")
                .bind(&id)
                .bind(group)
                .execute(&mut **tx)
                .await?;
        }
        self.audit(tx, added(user)).await
    }

    /// Everyone, by email.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, DirectoryError> {
        let emails: Vec<String> = sqlx::query("SELECT email FROM users ORDER BY email")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get("email"))
            .collect::<Result<_, _>>()?;
        let mut users = Vec::with_capacity(emails.len());
        for email in emails {
            users.push(self.show_user(&Email::parse(&email)?).await?.summary);
        }
        Ok(users)
    }

    /// One person with their passes and methods.
    pub async fn show_user(&self, email: &Email) -> Result<UserDetail, DirectoryError> {
        let mut conn = self.pool.acquire().await?;
        let user = self.require_user(&mut conn, email).await?;
        let policy = self.policy_on(&mut conn).await?;
        let allowed = policy.allows(&user.groups);
        let now = self.now();
        let passes = sqlx::query(select_passes!(
            "WHERE user_id = $1 AND pending_until IS NULL \
             ORDER BY created_at DESC, (revoked_at IS NULL) DESC, id"
        ))
        .bind(&user.id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            pass_from_row(row).map(|pass| {
                let status = pass.status(allowed && user.enabled, now);
                (pass, status)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
        let methods = self.methods(&user.id).await?;

        Ok(UserDetail {
            summary: UserSummary {
                email: user.email,
                display_name: user.display_name,
                groups: user.groups,
                enabled: user.enabled,
                pass_status: passes.first().map(|(_, status)| *status),
                methods: methods.len() as i64,
            },
            created_at: user.created_at,
            passes,
            methods,
        })
    }

    /// Enables or disables a person. A disabled person's passes do not work.
    pub async fn set_user_enabled(
        &self,
        email: &Email,
        enabled: bool,
    ) -> Result<(), DirectoryError> {
        let mut tx = self.write_person_by_email(email).await?;
        let user = self.require_user(&mut tx, email).await?;
        sqlx::query("UPDATE users SET enabled = $1 WHERE id = $2")
            .bind(i64::from(enabled))
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        self.audit(
            &mut tx,
            Event::new("user_changed")
                .user(email)
                .with("enabled", enabled),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Removes a person with their passes and methods. The audit log keeps
    /// what happened to them.
    pub async fn remove_user(&self, email: &Email) -> Result<(), DirectoryError> {
        let mut tx = self.write_person_by_email(email).await?;
        let user = self.require_user(&mut tx, email).await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        self.audit(&mut tx, Event::new("user_removed").user(email))
            .await?;
        self.commit(tx).await?;
        Ok(())
    }
}
