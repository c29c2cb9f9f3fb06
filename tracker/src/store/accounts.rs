//! Accounts and sessions in storage: users and their email index, single-use email
//! tokens, refresh tokens and their families. Multi-tree changes run in one
//! transaction inside one writer job.

use super::kv::Transactional;

use super::records::SESSION_RECORD_VERSION;
use super::{codec, dec_tx, enc_tx, Store, StoreError, Trees};
use super::{EmailToken, Family, FamilyV1, RefreshToken, RefreshTokenV1, TokenKind, User, UserId};

/// Why an email token could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTokenError {
    /// No such token, or one of another kind, or its account is gone.
    Unknown,
    Used,
    Expired,
}

/// What [`Store::create_user`] did.
#[derive(Debug, Clone)]
pub enum Created {
    Created(User),
    /// An account with this email exists; nothing was stored.
    EmailTaken,
    /// The bootstrap token could not be used; nothing was stored.
    BadBootstrap(EmailTokenError),
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// Marked used; the next token of its family was stored (the family as it is now).
    Rotated {
        family_id: [u8; 16],
        family: Family,
    },
    /// No such token or family.
    Unknown,
    /// The family was signed out.
    Revoked,
    Expired,
    /// It was already used (longer ago than the grace): the family is now revoked.
    Reused,
}

pub(super) fn enc_family(f: &Family) -> Result<Vec<u8>, StoreError> {
    codec::encode_version(SESSION_RECORD_VERSION, f)
}

pub(super) fn dec_family(b: &[u8]) -> Result<Family, StoreError> {
    codec::decode_evolved::<FamilyV1, Family>(SESSION_RECORD_VERSION, b)
}

pub(super) fn enc_refresh(r: &RefreshToken) -> Result<Vec<u8>, StoreError> {
    codec::encode_version(SESSION_RECORD_VERSION, r)
}

pub(super) fn dec_refresh(b: &[u8]) -> Result<RefreshToken, StoreError> {
    codec::decode_evolved::<RefreshTokenV1, RefreshToken>(SESSION_RECORD_VERSION, b)
}

/// The key of a node's session index entry.
pub(super) fn node_family_key(node: &str, family: &[u8]) -> Vec<u8> {
    let mut k = node.as_bytes().to_vec();
    k.extend_from_slice(family);
    k
}

impl Store {
    /// The account `id`.
    pub fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        match self.trees.users.get(id.0)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The id of the account with this (normalised) email.
    pub fn user_id_by_email(&self, email: &str) -> Result<Option<UserId>, StoreError> {
        let Some(id) = self.trees.emails.get(email.as_bytes())? else {
            return Ok(None);
        };
        let id: [u8; 16] = id
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("email index".to_owned()))?;
        Ok(Some(UserId(id)))
    }

    /// Whether an account has this (normalised) email.
    pub fn email_taken(&self, email: &str) -> Result<bool, StoreError> {
        self.trees.emails.contains_key(email.as_bytes())
    }

    /// Every readable account (unreadable ones are skipped).
    pub fn all_users(&self) -> Vec<User> {
        self.trees
            .users
            .iter()
            .values()
            .filter_map(|v| match v {
                Ok(v) => codec::decode(&v).ok(),
                Err(err) => {
                    tracing::warn!(%err, "cannot read the accounts");
                    None
                }
            })
            .collect()
    }

    /// Stores a new account and its email index (and its verification token), unless the
    /// email is taken. With `bootstrap` (the hash of an admin bootstrap link's token), the
    /// token is used in the same transaction and the account becomes an admin; a bad
    /// token stores nothing.
    pub async fn create_user(
        &self,
        user: User,
        token: Option<([u8; 32], EmailToken)>,
        bootstrap: Option<[u8; 32]>,
        now: u64,
    ) -> Result<Created, StoreError> {
        self.write(move |t| {
            (&t.users, &t.emails, &t.email_tokens).transaction(|(users, emails, tokens)| {
                if emails.get(user.email.as_bytes())?.is_some() {
                    return Ok(Created::EmailTaken);
                }
                let mut user = user.clone();
                if let Some(hash) = bootstrap {
                    let Some(raw) = tokens.get(hash)? else {
                        return Ok(Created::BadBootstrap(EmailTokenError::Unknown));
                    };
                    let mut rec: EmailToken = dec_tx(&raw)?;
                    let why = if rec.kind != TokenKind::Bootstrap {
                        Some(EmailTokenError::Unknown)
                    } else if rec.used {
                        Some(EmailTokenError::Used)
                    } else if rec.expires_at <= now {
                        Some(EmailTokenError::Expired)
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        return Ok(Created::BadBootstrap(why));
                    }
                    rec.used = true;
                    tokens.insert(hash, enc_tx(&rec)?)?;
                    user.role = reelnet_proto::Role::Admin;
                }
                users.insert(user.id.0, enc_tx(&user)?)?;
                emails.insert(user.email.as_bytes(), user.id.0)?;
                if let Some((hash, record)) = &token {
                    tokens.insert(hash, enc_tx(record)?)?;
                }
                Ok(Created::Created(user))
            })
        })
        .await
    }

    /// Whether any account is an admin.
    pub fn has_admin(&self) -> bool {
        self.all_users()
            .iter()
            .any(|u| u.role == reelnet_proto::Role::Admin)
    }

    /// Whether the email token `hash` of `kind` could be used now (a read: the use itself
    /// is [`Store::use_email_token`]). Lets a reset confirmation with a dead link be
    /// refused before the new password is hashed.
    pub fn check_email_token(
        &self,
        hash: &[u8; 32],
        kind: TokenKind,
        now: u64,
    ) -> Result<Result<(), EmailTokenError>, StoreError> {
        let Some(raw) = self.trees.email_tokens.get(hash)? else {
            return Ok(Err(EmailTokenError::Unknown));
        };
        let rec: EmailToken = codec::decode(&raw)?;
        Ok(if rec.kind != kind {
            Err(EmailTokenError::Unknown)
        } else if rec.used {
            Err(EmailTokenError::Used)
        } else if rec.expires_at <= now {
            Err(EmailTokenError::Expired)
        } else {
            Ok(())
        })
    }

    /// Removes emailed tokens that expired more than `keep_secs` ago (used ones too, once
    /// expired) and expired refresh tokens; returns how many went.
    pub async fn purge_expired_tokens(
        &self,
        now: u64,
        keep_secs: u64,
    ) -> Result<usize, StoreError> {
        self.write(move |t| {
            let cutoff = now.saturating_sub(keep_secs);
            let mut gone = 0;
            for item in t.email_tokens.iter() {
                let (key, raw) = item?;
                let dead = match codec::decode::<EmailToken>(&raw) {
                    Ok(rec) => rec.expires_at <= cutoff,
                    Err(_) => true,
                };
                if dead {
                    t.email_tokens.remove(key)?;
                    gone += 1;
                }
            }
            for item in t.refresh.iter() {
                let (key, raw) = item?;
                let dead = match dec_refresh(&raw) {
                    Ok(rec) => rec.expires_at <= cutoff,
                    Err(_) => true,
                };
                if dead {
                    t.refresh.remove(key)?;
                    gone += 1;
                }
            }
            Ok(gone)
        })
        .await
    }

    /// Applies `f` to the account with this email (account and index read in one
    /// transaction); `None` when there is none.
    pub async fn update_user_by_email(
        &self,
        email: String,
        f: impl Fn(&mut User) + Send + Sync + 'static,
    ) -> Result<Option<User>, StoreError> {
        self.write(move |t| {
            (&t.users, &t.emails).transaction(|(users, emails)| {
                let Some(id) = emails.get(email.as_bytes())? else {
                    return Ok(None);
                };
                let Some(raw) = users.get(&id)? else {
                    return Ok(None);
                };
                let mut user: User = dec_tx(&raw)?;
                f(&mut user);
                users.insert(&id, enc_tx(&user)?)?;
                Ok(Some(user))
            })
        })
        .await
    }

    /// Applies `f` to account `id`; `None` when it does not exist.
    pub async fn update_user(
        &self,
        id: UserId,
        f: impl FnOnce(&mut User) + Send + 'static,
    ) -> Result<Option<User>, StoreError> {
        self.write(move |t| {
            let Some(raw) = t.users.get(id.0)? else {
                return Ok(None);
            };
            let mut user: User = codec::decode(&raw)?;
            f(&mut user);
            t.users.insert(id.0, codec::encode(&user)?)?;
            Ok(Some(user))
        })
        .await
    }

    /// Removes an account, its email index and everything stored under its id (watch
    /// later, progress, history, session families, playback preferences).
    pub async fn delete_user(&self, id: UserId, email: String) -> Result<(), StoreError> {
        self.write(move |t| {
            for tree in [
                &t.watchlist,
                &t.progress,
                &t.history,
                &t.user_families,
                &t.consents,
                &t.preferences,
            ] {
                let keys: Vec<_> = tree.scan_prefix(id.0).keys().collect::<Result<_, _>>()?;
                for k in keys {
                    tree.remove(k)?;
                }
            }
            t.emails.remove(email.as_bytes())?;
            t.users.remove(id.0)?;
            Ok(())
        })
        .await
    }

    /// Stores an emailed token under the hash of its secret.
    pub async fn put_email_token(
        &self,
        hash: [u8; 32],
        token: EmailToken,
    ) -> Result<(), StoreError> {
        let bytes = codec::encode(&token)?;
        self.write(move |t| {
            t.email_tokens.insert(hash, bytes)?;
            Ok(())
        })
        .await
    }

    /// Marks the email token `hash` of `kind` used and applies `apply` to its account, in
    /// one transaction.
    pub async fn use_email_token(
        &self,
        hash: [u8; 32],
        kind: TokenKind,
        now: u64,
        apply: impl Fn(&mut User) + Send + Sync + 'static,
    ) -> Result<Result<User, EmailTokenError>, StoreError> {
        self.write(move |t| {
            (&t.email_tokens, &t.users).transaction(|(tokens, users)| {
                let Some(raw) = tokens.get(hash)? else {
                    return Ok(Err(EmailTokenError::Unknown));
                };
                let mut rec: EmailToken = dec_tx(&raw)?;
                if rec.kind != kind {
                    return Ok(Err(EmailTokenError::Unknown));
                }
                if rec.used {
                    return Ok(Err(EmailTokenError::Used));
                }
                if rec.expires_at <= now {
                    return Ok(Err(EmailTokenError::Expired));
                }
                let Some(raw_user) = users.get(rec.user.0)? else {
                    return Ok(Err(EmailTokenError::Unknown));
                };
                let mut user: User = dec_tx(&raw_user)?;
                rec.used = true;
                apply(&mut user);
                tokens.insert(hash, enc_tx(&rec)?)?;
                users.insert(user.id.0, enc_tx(&user)?)?;
                Ok(Ok(user))
            })
        })
        .await
    }

    /// Stores a sign-in: its first refresh token, the new family, the user's index entry
    /// and (for tokens bound to a node) the node's.
    pub async fn start_session(
        &self,
        refresh_hash: [u8; 32],
        token: RefreshToken,
        family_id: [u8; 16],
        family: Family,
    ) -> Result<(), StoreError> {
        let uid = token.user;
        let node = reelnet_proto::claims::audience_node(&family.aud).map(str::to_owned);
        self.write(move |t| {
            (&t.refresh, &t.families, &t.user_families, &t.node_families).transaction(
                |(refresh, families, user_families, node_families)| {
                    refresh.insert(refresh_hash, enc_refresh(&token)?)?;
                    families.insert(family_id, enc_family(&family)?)?;
                    user_families.insert(uid.key(&family_id), [])?;
                    if let Some(node) = &node {
                        node_families.insert(node_family_key(node, &family_id), [])?;
                    }
                    Ok(())
                },
            )
        })
        .await
    }

    /// Rotates the refresh token `hash`: marks it used and stores `next_hash` (expiring at
    /// `now + ttl`) in its family. A token used before is rotated again when its first use
    /// was less than `grace` seconds ago (two tabs at once); later, it revokes the family.
    pub async fn rotate_refresh(
        &self,
        hash: [u8; 32],
        next_hash: [u8; 32],
        now: u64,
        ttl: u64,
        grace: u64,
    ) -> Result<Rotation, StoreError> {
        self.write(move |t| {
            (&t.refresh, &t.families).transaction(|(refresh, families)| {
                let Some(raw) = refresh.get(hash)? else {
                    return Ok(Rotation::Unknown);
                };
                let mut rec = dec_refresh(&raw)?;
                let Some(raw_fam) = families.get(rec.family)? else {
                    return Ok(Rotation::Unknown);
                };
                let mut fam = dec_family(&raw_fam)?;
                if fam.revoked {
                    return Ok(Rotation::Revoked);
                }
                let forked = if rec.used {
                    // Used before: a second use is a copy unless within the grace.
                    rec.used_at.is_none_or(|at| now >= at.saturating_add(grace))
                } else {
                    // Unused, but the family moved on (by a sibling minted within a
                    // grace) more than `grace` after this token was issued: two branches
                    // live at once, so one of them is a copy. Without this, a token
                    // replayed within the grace would start a branch of its own that
                    // rotates forever next to the viewer's.
                    matches!(
                        (rec.used_at, fam.last_used_at),
                        (Some(issued), Some(last)) if last >= issued.saturating_add(grace.max(1))
                    )
                };
                if forked {
                    fam.revoked = true;
                    families.insert(rec.family, enc_family(&fam)?)?;
                    return Ok(Rotation::Reused);
                }
                if rec.expires_at <= now {
                    return Ok(Rotation::Expired);
                }
                if !rec.used {
                    rec.used = true;
                    rec.used_at = Some(now);
                    refresh.insert(hash, enc_refresh(&rec)?)?;
                }
                let next_rec = RefreshToken {
                    user: rec.user,
                    family: rec.family,
                    expires_at: now + ttl,
                    used: false,
                    // Unused: when it was issued.
                    used_at: Some(now),
                };
                refresh.insert(next_hash, enc_refresh(&next_rec)?)?;
                fam.last_used_at = Some(now);
                families.insert(rec.family, enc_family(&fam)?)?;
                Ok(Rotation::Rotated {
                    family_id: rec.family,
                    family: fam,
                })
            })
        })
        .await
    }

    /// The family (id and record) of refresh token `hash`, read without changing anything.
    pub fn refresh_family(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<([u8; 16], Family)>, StoreError> {
        let Some(raw) = self.trees.refresh.get(hash)? else {
            return Ok(None);
        };
        let rec = dec_refresh(&raw)?;
        Ok(self.family(&rec.family)?.map(|f| (rec.family, f)))
    }

    /// The family `id`.
    pub fn family(&self, id: &[u8; 16]) -> Result<Option<Family>, StoreError> {
        match self.trees.families.get(id)? {
            Some(raw) => Ok(Some(dec_family(&raw)?)),
            None => Ok(None),
        }
    }

    /// Every family of `uid` (id and record).
    pub fn user_families(&self, uid: &UserId) -> Result<Vec<([u8; 16], Family)>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees.user_families.scan_prefix(uid.0) {
            let (key, _) = item?;
            let Ok(id) = <[u8; 16]>::try_from(&key[16..]) else {
                continue;
            };
            if let Some(f) = self.family(&id)? {
                out.push((id, f));
            }
        }
        Ok(out)
    }

    /// Revokes the family of refresh token `hash` (nothing when unknown).
    pub async fn revoke_family_of(&self, hash: [u8; 32]) -> Result<(), StoreError> {
        self.write(move |t| {
            let Some(raw) = t.refresh.get(hash)? else {
                return Ok(());
            };
            let rec = dec_refresh(&raw)?;
            revoke_family(t, &rec.family)
        })
        .await
    }

    /// Revokes family `id`; whether it existed.
    pub async fn revoke_family_id(&self, id: [u8; 16]) -> Result<bool, StoreError> {
        self.write(move |t| {
            let known = t.families.contains_key(id)?;
            revoke_family(t, &id)?;
            Ok(known)
        })
        .await
    }

    /// Revokes every family bound to node `node` (hex id); how many there were.
    pub async fn revoke_node_families(&self, node: String) -> Result<usize, StoreError> {
        self.write(move |t| {
            let mut n = 0;
            for item in t.node_families.scan_prefix(node.as_bytes()) {
                let (key, _) = item?;
                revoke_family(t, &key[node.len()..])?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    /// Revokes every session family of `uid`.
    pub async fn revoke_all_sessions(&self, uid: UserId) -> Result<(), StoreError> {
        self.write(move |t| {
            for item in t.user_families.scan_prefix(uid.0) {
                let (key, _) = item?;
                revoke_family(t, &key[16..])?;
            }
            Ok(())
        })
        .await
    }
}

fn revoke_family(t: &Trees, family: &[u8]) -> Result<(), StoreError> {
    if let Some(raw) = t.families.get(family)? {
        let mut fam = dec_family(&raw)?;
        if !fam.revoked {
            fam.revoked = true;
            t.families.insert(family, enc_family(&fam)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn email_token(kind: TokenKind, expires_at: u64) -> EmailToken {
        EmailToken {
            user: UserId([0; 16]),
            kind,
            expires_at,
            used: false,
        }
    }

    #[test]
    fn sessions_written_before_version_2_still_decode() {
        #[derive(serde::Serialize)]
        struct OldFamily {
            user: UserId,
            revoked: bool,
            created_at: u64,
        }
        #[derive(serde::Serialize)]
        struct OldRefresh {
            user: UserId,
            family: [u8; 16],
            expires_at: u64,
            used: bool,
        }
        let old = codec::encode(&OldFamily {
            user: UserId([3; 16]),
            revoked: true,
            created_at: 42,
        })
        .unwrap();
        let fam = dec_family(&old).unwrap();
        assert_eq!(
            (fam.user, fam.revoked, fam.created_at),
            (UserId([3; 16]), true, 42)
        );
        assert_eq!(fam.client, "script");
        assert_eq!(fam.aud, reelnet_proto::claims::ACCESS_TOKEN_AUDIENCE);
        assert!(fam.scope.is_none());
        let old = codec::encode(&OldRefresh {
            user: UserId([3; 16]),
            family: [9; 16],
            expires_at: 7,
            used: true,
        })
        .unwrap();
        let rec = dec_refresh(&old).unwrap();
        assert_eq!((rec.family, rec.used, rec.used_at), ([9; 16], true, None));
        // New records round-trip, and are not mistaken for old ones.
        let again = dec_family(&enc_family(&fam).unwrap()).unwrap();
        assert_eq!(again.client, "script");
        assert!(codec::decode::<Family>(&enc_family(&fam).unwrap()).is_err());
    }

    async fn expired_tokens_are_purged_and_bootstrap_tokens_work_once(store: Store) {
        let now = 1_000_000;
        store
            .put_email_token([1; 32], email_token(TokenKind::PasswordReset, now - 1))
            .await
            .unwrap();
        store
            .put_email_token([2; 32], email_token(TokenKind::Verify, now + 100))
            .await
            .unwrap();
        store
            .put_email_token([3; 32], email_token(TokenKind::Bootstrap, now + 100))
            .await
            .unwrap();
        assert_eq!(store.purge_expired_tokens(now, 0).await.unwrap(), 1);
        assert_eq!(
            store
                .check_email_token(&[1; 32], TokenKind::PasswordReset, now)
                .unwrap(),
            Err(EmailTokenError::Unknown)
        );
        assert_eq!(
            store
                .check_email_token(&[2; 32], TokenKind::Verify, now)
                .unwrap(),
            Ok(())
        );

        let user = |email: &str| User {
            id: UserId::random(),
            email: email.to_owned(),
            display_name: "x".into(),
            password_hash: String::new(),
            email_verified: false,
            tier: reelnet_proto::Tier::Free,
            tier_until: None,
            role: reelnet_proto::Role::User,
            created_at: now,
        };
        // The first account is an ordinary user; only the bootstrap token makes an admin.
        let Created::Created(first) = store
            .create_user(user("a@x"), None, None, now)
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(first.role, reelnet_proto::Role::User);
        assert!(!store.has_admin());
        // A verification token is not a bootstrap token.
        assert!(matches!(
            store
                .create_user(user("b@x"), None, Some([2; 32]), now)
                .await
                .unwrap(),
            Created::BadBootstrap(EmailTokenError::Unknown)
        ));
        // A taken email does not use up the token.
        assert!(matches!(
            store
                .create_user(user("a@x"), None, Some([3; 32]), now)
                .await
                .unwrap(),
            Created::EmailTaken
        ));
        let Created::Created(admin) = store
            .create_user(user("c@x"), None, Some([3; 32]), now)
            .await
            .unwrap()
        else {
            panic!("not created")
        };
        assert_eq!(admin.role, reelnet_proto::Role::Admin);
        assert!(store.has_admin());
        assert!(matches!(
            store
                .create_user(user("d@x"), None, Some([3; 32]), now)
                .await
                .unwrap(),
            Created::BadBootstrap(EmailTokenError::Used)
        ));
    }
    crate::store::testing::engine_tests!(
        expired_tokens_are_purged_and_bootstrap_tokens_work_once,
        super::expired_tokens_are_purged_and_bootstrap_tokens_work_once
    );

    /// A refresh token replayed within the grace gets a sibling; the two branches cannot
    /// both live: whichever moves second, more than the grace after the fork, ends the
    /// family (a thief who replays within the grace does not keep a session of their own).
    async fn a_branch_forked_within_the_grace_does_not_live_on(store: Store) {
        let (ttl, grace) = (86_400, 10);
        let t0 = 1_000_000;
        let start = |store: Store, first: [u8; 32], family: [u8; 16]| async move {
            store
                .start_session(
                    first,
                    RefreshToken {
                        user: UserId([1; 16]),
                        family,
                        expires_at: t0 + ttl,
                        used: false,
                        used_at: Some(t0),
                    },
                    family,
                    Family {
                        user: UserId([1; 16]),
                        revoked: false,
                        created_at: t0,
                        client: "script".to_owned(),
                        aud: reelnet_proto::claims::ACCESS_TOKEN_AUDIENCE.to_owned(),
                        scope: None,
                        last_used_at: None,
                    },
                )
                .await
                .unwrap();
        };
        let rotated = |r: &Rotation| matches!(r, Rotation::Rotated { .. });
        let reused = |r: &Rotation| matches!(r, Rotation::Reused);

        // The viewer rotates R0 into R1; the thief replays R0 within the grace (R1').
        start(store.clone(), [10; 32], [1; 16]).await;
        let r = store
            .rotate_refresh([10; 32], [11; 32], t0 + 100, ttl, grace)
            .await
            .unwrap();
        assert!(rotated(&r), "{r:?}");
        let r = store
            .rotate_refresh([10; 32], [12; 32], t0 + 105, ttl, grace)
            .await
            .unwrap();
        assert!(rotated(&r), "two tabs at once: {r:?}");
        // The thief's branch moves on; when the viewer's moves later, the family ends.
        let r = store
            .rotate_refresh([12; 32], [13; 32], t0 + 200, ttl, grace)
            .await
            .unwrap();
        assert!(rotated(&r), "{r:?}");
        let r = store
            .rotate_refresh([11; 32], [14; 32], t0 + 300, ttl, grace)
            .await
            .unwrap();
        assert!(reused(&r), "{r:?}");
        let r = store
            .rotate_refresh([13; 32], [15; 32], t0 + 301, ttl, grace)
            .await
            .unwrap();
        assert!(matches!(r, Rotation::Revoked), "{r:?}");

        // Two tabs that refresh at once and then go on with one of the siblings (the other
        // is dropped with the cookie it was in) keep their session, for good.
        start(store.clone(), [20; 32], [2; 16]).await;
        for (from, to, at) in [
            ([20; 32], [21; 32], t0 + 100),
            ([20; 32], [22; 32], t0 + 103),
            ([21; 32], [23; 32], t0 + 110),
            ([23; 32], [24; 32], t0 + 1_000),
            ([24; 32], [25; 32], t0 + 5_000),
        ] {
            let r = store
                .rotate_refresh(from, to, at, ttl, grace)
                .await
                .unwrap();
            assert!(rotated(&r), "{at}: {r:?}");
        }
        // Its dropped sibling, presented late, is a copy.
        let r = store
            .rotate_refresh([22; 32], [26; 32], t0 + 6_000, ttl, grace)
            .await
            .unwrap();
        assert!(reused(&r), "{r:?}");

        // Without a grace, a plain chain of rotations is never taken for a fork.
        start(store.clone(), [30; 32], [3; 16]).await;
        for (from, to, at) in [
            ([30; 32], [31; 32], t0),
            ([31; 32], [32; 32], t0),
            ([32; 32], [33; 32], t0 + 1),
        ] {
            let r = store.rotate_refresh(from, to, at, ttl, 0).await.unwrap();
            assert!(rotated(&r), "{at}: {r:?}");
        }
    }
    crate::store::testing::engine_tests!(
        a_branch_forked_within_the_grace_does_not_live_on,
        super::a_branch_forked_within_the_grace_does_not_live_on
    );
}
