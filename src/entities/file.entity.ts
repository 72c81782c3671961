import { BigIntType, Entity, Enum, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { User } from './user.entity';

/** Whether a file's bytes may be served: a direct upload is VERIFYING until the server has read it once. */
export enum FileStatus {
  VERIFYING = 'VERIFYING',
  READY = 'READY',
  REJECTED = 'REJECTED',
}

@Entity({ tableName: 'files' })
// Names are unique regardless of case, so two downloads never overwrite each other on
// case-insensitive file systems. The index, not a check, settles concurrent completions. A
// REJECTED file keeps its name for display but no longer holds it.
@Index({ name: 'files_name_lower_unique', expression: 'create unique index "files_name_lower_unique" on "files" (lower("name")) where "status" <> \'REJECTED\'' })
// Newest first with a stable tie-break: the listing's sort and its cursor.
@Index({ name: 'files_uploaded_at_id_index', properties: ['uploadedAt', 'id'] })
// What a user's quota counts: the sizes of the files they authored.
@Index({ name: 'files_author_id_index', properties: ['author'] })
export class File {
  [OptionalProps]?: 'description' | 'uploadedAt' | 'status';

  /** The id of the upload it came from. */
  @PrimaryKey({ type: 'uuid' })
  id!: string;

  @Property({ type: 'text' })
  name!: string;

  @Property({ type: 'text' })
  description: string = '';

  @Property({ type: new BigIntType('number') })
  size!: number;

  @Property({ type: 'text' })
  md5!: string;

  @Property({ type: 'text', nullable: true })
  mimeType?: string | null;

  @Property({ type: 'datetime' })
  uploadedAt: Date = new Date();

  @Enum({ items: () => FileStatus, type: 'text' })
  status: FileStatus = FileStatus.READY;

  /** Why a file was REJECTED. */
  @Property({ type: 'text', nullable: true })
  statusReason?: string | null;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  author?: User | null;
}
