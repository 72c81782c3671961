import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { UploadStatus } from '../../entities';
import type { UploadView } from '../../events/event-hub';
import { partCountOf } from '../../uploads/direct-upload.service';
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

  @Field(() => SafeInt, { nullable: true, description: 'Every part but the last is exactly this size (null: a plain sequential upload).' })
  partSize!: number | null;

  @Field(() => Int, { nullable: true, description: 'ceil(totalSize / partSize); null without partSize.' })
  partCount!: number | null;

  @Field(() => Boolean, { description: 'A direct upload: the client PUTs the parts to the object store over signUploadParts URLs (false with disk storage).' })
  direct!: boolean;

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
      partSize: upload.partSize ?? null,
      partCount: partCountOf(upload),
      direct: upload.direct,
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

  @Field(() => Boolean, { description: 'startUpload(direct: true) is granted: the storage is an object store clients can PUT parts to.' })
  directUploads!: boolean;

  @Field(() => Boolean, { description: 'uploadPart is served: an upload started with a partSize takes its parts in any order, several at once.' })
  parallelParts!: boolean;

  @Field(() => Int, { description: 'A part numbered more than this past part offset / partSize + 1 (where the appended bytes end) is refused (UPLOAD_LOCKED) until the parts before it are appended.' })
  maxPartsAhead!: number;
}

@ObjectType()
export class HttpHeader {
  @Field(() => String)
  name!: string;

  @Field(() => String)
  value!: string;
}

@ObjectType({ description: 'A presigned PUT for one part of a direct upload.' })
export class SignedPart {
  @Field(() => Int)
  partNumber!: number;

  @Field(() => String, { description: "PUT the part's bytes here; keep the answer's ETag." })
  url!: string;

  @Field(() => [HttpHeader], { description: 'Send exactly these headers with the PUT (Content-MD5 when partMd5s were given).' })
  headers!: HttpHeader[];

  @Field(() => DateTime, { description: 'DIRECT_URL_TTL after signing; sign the part again after that.' })
  expiresAt!: Date;
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

  @Field(() => SafeInt, {
    nullable: true,
    description: 'Send the upload in parts of exactly this size (but the last), with uploadPart (at most MAX_CHUNK_SIZE) or, direct, to the object store; needed by direct.',
  })
  partSize?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'Ask for a direct upload to object storage (partSize of at least 5 MiB); ChunkedUpload.direct says whether it was granted.' })
  direct?: boolean | null;
}
