//! The integration scenarios on SFTP (a real OpenSSH sshd), S3 (a real Garage node),
//! WebDAV (Apache httpd's mod_dav_fs) and Azure Blob (Azurite), all started on 127.0.0.1
//! by scripts/test-servers. Without the servers these tests
//! skip on a developer's machine and fail in CI.

mod common;

use common::Kind;
use common::copy_scenarios::{copies_between_repositories, copies_with_shared_chunker_params};
use common::crash_scenarios::*;
use common::fault_scenarios::*;
use common::history_scenarios::*;
use common::input_scenarios::*;
use common::key_scenarios::*;
use common::prune_scenarios::*;
use common::restore_scenarios::*;
use common::scenarios::*;
use common::write_only_scenarios::*;

macro_rules! on_remote_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sftp {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Kind::Sftp) } )*
        }
        mod s3 {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Kind::S3) } )*
        }
        mod webdav {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Kind::WebDav) } )*
        }
        mod azure {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Kind::Azure) } )*
        }
    };
}

on_remote_backends!(
    every_file_kind_round_trips,
    unchanged_tree_adds_almost_nothing,
    insertion_near_start_adds_few_chunks,
    identical_files_are_stored_once,
    two_backups_at_once,
    three_inits_at_once,
    killed_writers_leave_no_tmp_files,
    crash_loops,
    a_file_cut_short_while_read,
    the_cache_is_never_stored,
    faults_on_storage,
    sigkill_at_any_moment,
    prune_beside_backups,
    prune_reclaims_all_space,
    keys_are_added_removed_and_replaced,
    removals_of_each_others_key_leave_one,
    rollback_is_noticed,
    forgets_beside_readers_are_not_tampering,
    a_future_dated_parent_is_not_adopted,
    restore_into_a_changed_target,
    an_interrupted_restore_resumes,
    a_restore_downloads_each_pack_once,
    streams_are_backed_up,
    an_interrupted_backup_resumes,
    write_only_key_backs_up_but_reads_nothing_of_others,
    write_only_key_cannot_plant_a_parent,
    prune_beside_write_only_backups,
    after_rotation_and_reencryption_the_old_key_opens_nothing,
    rotation_and_reencryption_beside_backups,
);

#[test]
fn copy_local_to_s3() {
    copies_between_repositories(Kind::Local, Kind::S3);
}

#[test]
fn copy_s3_to_sftp() {
    copies_between_repositories(Kind::S3, Kind::Sftp);
}

#[test]
fn copy_with_shared_chunker_params_sftp_to_s3() {
    copies_with_shared_chunker_params(Kind::Sftp, Kind::S3);
}
