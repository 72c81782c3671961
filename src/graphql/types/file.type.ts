import { Directive, Field, ID, ObjectType } from 'type-graphql';
import type { File } from '../../entities';
import { DateTime, SafeInt } from '../scalars';
import { UserType } from './user.type';

// Federation entity (used when FEDERATION=true; plain SDL does not print it).
@Directive('@key(fields: "id")')
@ObjectType('File')
export class FileType {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { description: 'Unique; a clash becomes "name_1.ext", "name_2.ext", ...' })
  name!: string;

  @Field(() => String)
  description!: string;

  @Field(() => SafeInt)
  size!: number;

  @Field(() => String, { description: 'Lowercase hex md5 of the whole file.' })
  md5!: string;

  @Field(() => String, { nullable: true })
  mimeType?: string | null;

  @Field(() => DateTime)
  uploadedAt!: Date;

  @Field(() => UserType, { nullable: true, description: 'Null once the author is deleted.' })
  author?: UserType | null;

  static from(file: File): FileType {
    return Object.assign(new FileType(), {
      id: file.id,
      name: file.name,
      description: file.description,
      size: file.size,
      md5: file.md5,
      mimeType: file.mimeType ?? null,
      uploadedAt: file.uploadedAt,
      author: file.author ? UserType.from(file.author) : null,
    });
  }
}
