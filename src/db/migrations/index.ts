import { Migration20261125000000 } from './Migration20261125000000_initial';
import { Migration20261125010000 } from './Migration20261125010000_login_throttle';
import { Migration20261125020000 } from './Migration20261125020000_storage_state';
import { Migration20261202000000 } from './Migration20261202000000_fenced_leases';
import { Migration20261202100000 } from './Migration20261202100000_tus_uploads';
import { Migration20261202200000 } from './Migration20261202200000_files_name_trgm';
import { Migration20261202210000 } from './Migration20261202210000_username_key';
import { Migration20261202220000 } from './Migration20261202220000_login_throttle_pairs';
import { Migration20261203100000 } from './Migration20261203100000_accounts';
import { Migration20261203110000 } from './Migration20261203110000_quotas';
import { Migration20261203120000 } from './Migration20261203120000_direct_uploads';
import { Migration20261204000000 } from './Migration20261204000000_upload_parts';
import { Migration20261204100000 } from './Migration20261204100000_auth_cache';

/** Listed explicitly so the compiled server needs no file globbing to find them. */
export const migrations = [
  { name: 'Migration20261125000000_initial', class: Migration20261125000000 },
  { name: 'Migration20261125010000_login_throttle', class: Migration20261125010000 },
  { name: 'Migration20261125020000_storage_state', class: Migration20261125020000 },
  { name: 'Migration20261202000000_fenced_leases', class: Migration20261202000000 },
  { name: 'Migration20261202100000_tus_uploads', class: Migration20261202100000 },
  { name: 'Migration20261202200000_files_name_trgm', class: Migration20261202200000 },
  { name: 'Migration20261202210000_username_key', class: Migration20261202210000 },
  { name: 'Migration20261202220000_login_throttle_pairs', class: Migration20261202220000 },
  { name: 'Migration20261203100000_accounts', class: Migration20261203100000 },
  { name: 'Migration20261203110000_quotas', class: Migration20261203110000 },
  { name: 'Migration20261203120000_direct_uploads', class: Migration20261203120000 },
  { name: 'Migration20261204000000_upload_parts', class: Migration20261204000000 },
  { name: 'Migration20261204100000_auth_cache', class: Migration20261204100000 },
];
