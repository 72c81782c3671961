import { Directive, Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { FileStatus, type File } from '../../entities';
import { DateTime, SafeInt } from '../scalars';
import { UserType } from './user.type';

registerEnumType(FileStatus, {
  name: 'FileStatus',
  description: 'VERIFYING: a direct upload the server is reading once to check its md5; READY: downloadable; REJECTED: the md5 did not match, the bytes are gone.',
});

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

  @Field(() => FileStatus, { description: 'Only READY files can be downloaded (else HTTP 409).' })
  status!: FileStatus;

  @Field(() => String, { nullable: true, description: 'Why the file was REJECTED.' })
  statusReason?: string | null;

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
      status: file.status,
      statusReason: file.statusReason ?? null,
      author: file.author ? UserType.from(file.author) : null,
    });
  }
}
