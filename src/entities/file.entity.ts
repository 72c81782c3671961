import { BigIntType, Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { User } from './user.entity';

@Entity({ tableName: 'files' })
// Names are unique regardless of case, so two downloads never overwrite each other on
// case-insensitive file systems. The index, not a check, settles concurrent completions.
@Index({ name: 'files_name_lower_unique', expression: 'create unique index "files_name_lower_unique" on "files" (lower("name"))' })
// Newest first with a stable tie-break: the listing's sort and its cursor.
@Index({ name: 'files_uploaded_at_id_index', properties: ['uploadedAt', 'id'] })
// What a user's quota counts: the sizes of the files they authored.
@Index({ name: 'files_author_id_index', properties: ['author'] })
export class File {
  [OptionalProps]?: 'description' | 'uploadedAt';

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

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  author?: User | null;
}
