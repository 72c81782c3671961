import { Field, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { UploadStatus } from '../../entities';
import type { UploadView } from '../../events/event-hub';
import { DateTime, SafeInt } from '../scalars';

registerEnumType(UploadStatus, { name: 'UploadStatus' });

@ObjectType('ChunkedUpload')
export class ChunkedUploadType {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { description: 'The cleaned name the file will be stored under (before clashes are resolved).' })
  filename!: string;

  @Field(() => String)
  description!: string;

  @Field(() => String, { nullable: true })
  mimeType?: string | null;

  @Field(() => SafeInt, { description: 'Declared by startUpload. While lengthDeferred: the most the upload may hold.' })
  totalSize!: number;

  @Field(() => Boolean, { description: 'Started over tus with Upload-Defer-Length: the size is declared by a later PATCH.' })
  lengthDeferred!: boolean;

  @Field(() => SafeInt, { description: 'Bytes durably stored; the next chunk must start here.' })
  offset!: number;

  @Field(() => UploadStatus)
  status!: UploadStatus;

  @Field(() => DateTime)
  createdAt!: Date;

  @Field(() => DateTime, { description: 'UPLOAD_TTL after the last chunk; later chunks are refused.' })
  expiresAt!: Date;

  @Field(() => SafeInt, { description: 'The largest chunk the server accepts (MAX_CHUNK_SIZE).' })
  maxChunkSize!: number;

  @Field(() => SafeInt, { description: 'A chunk size that suits the storage backend; every chunk but the last should be this size.' })
  chunkSize!: number;

  static from(upload: UploadView, sizes: { maxChunkSize: number; chunkSize: number }): ChunkedUploadType {
    return Object.assign(new ChunkedUploadType(), {
      id: upload.id,
      filename: upload.filename,
      description: upload.description,
      mimeType: upload.mimeType ?? null,
      totalSize: upload.totalSize,
      lengthDeferred: upload.lengthDeferred,
      offset: upload.offset,
      status: upload.status,
      createdAt: upload.createdAt,
      expiresAt: upload.expiresAt,
      ...sizes,
    });
  }
}

@ObjectType({ description: 'Limits a client can check before it starts (the browser page refuses a file that is too large up front).' })
export class ServerLimits {
  @Field(() => SafeInt, { description: 'The largest totalSize startUpload accepts (MAX_FILE_SIZE).' })
  maxFileSize!: number;

  @Field(() => SafeInt, { description: 'The largest chunk the server accepts (MAX_CHUNK_SIZE).' })
  maxChunkSize!: number;
}

@InputType()
export class StartUploadInput {
  @Field(() => String, { description: 'Path components and control characters are removed.' })
  filename!: string;

  @Field(() => SafeInt, { description: 'The exact size of the whole file in bytes; 0 is an empty file.' })
  totalSize!: number;

  @Field(() => String, { nullable: true })
  description?: string | null;

  @Field(() => String, { nullable: true, description: 'Guessed from the file name when not given.' })
  mimeType?: string | null;
}
