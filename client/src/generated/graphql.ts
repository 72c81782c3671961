/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
/** VERIFYING: a direct upload the server is reading once to check its md5; READY: downloadable; REJECTED: the md5 did not match, the bytes are gone. */
export type FileStatus =
  | 'READY'
  | 'REJECTED'
  | 'VERIFYING';

export type LibraryEventKind =
  /** A file entered the library (an upload completed). */
  | 'ADDED'
  /** A file was deleted; `file` is what it was. */
  | 'DELETED'
  /** A file finished its verification and can be downloaded. */
  | 'READY'
  /** A file failed its verification; its bytes are gone. */
  | 'REJECTED'
  /** A file changed (its description, say). */
  | 'UPDATED';

export type StartUploadInput = {
  description?: string | null | undefined;
  /** Ask for a direct upload to object storage (partSize of at least 5 MiB); ChunkedUpload.direct says whether it was granted. */
  direct?: boolean | null | undefined;
  /** Path components and control characters are removed. */
  filename: string;
  /** Guessed from the file name when not given. */
  mimeType?: string | null | undefined;
  /** Send the upload in parts of exactly this size (but the last), with uploadPart (at most MAX_CHUNK_SIZE) or, direct, to the object store; needed by direct. */
  partSize?: number | null | undefined;
  /** The exact size of the whole file in bytes; 0 is an empty file. */
  totalSize: number;
};

/** READ: queries and downloads. UPLOAD: READ plus the upload operations on one's own uploads (GraphQL and tus). FULL: all the user may do. */
export type TokenScope =
  | 'FULL'
  | 'READ'
  | 'UPLOAD';

export type UploadStatus =
  | 'ABORTED'
  | 'COMPLETE'
  | 'EXPIRED'
  | 'UPLOADING';

export type UploadStateFragment = { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null };

export type FileInfoFragment = { id: string, name: string, description: string, size: number, md5: string, mimeType: string | null, uploadedAt: string, downloadUrl: string, status: FileStatus, statusReason: string | null, author: { id: string, username: string } | null };

export type UserInfoFragment = { id: string, username: string, isAdmin: boolean };

export type LoginMutationVariables = Exact<{
  username: string;
  password: string;
}>;


export type LoginMutation = { login: { token: string, user: { id: string, username: string, isAdmin: boolean } } };

export type MeQueryVariables = Exact<{ [key: string]: never; }>;


export type MeQuery = { me: { id: string, username: string, isAdmin: boolean } | null };

export type StartUploadMutationVariables = Exact<{
  input: StartUploadInput;
}>;


export type StartUploadMutation = { startUpload: { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null } };

export type UploadStateQueryVariables = Exact<{
  id: string | number;
}>;


export type UploadStateQuery = { upload: { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null } | null };

export type MyUploadsQueryVariables = Exact<{
  status?: UploadStatus | null | undefined;
}>;


export type MyUploadsQuery = { myUploads: Array<{ createdAt: string, id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null }> };

export type UploadChunkMutationVariables = Exact<{
  uploadId: string | number;
  offset: number;
  chunk: Blob | null;
  chunkMd5?: string | null | undefined;
}>;


export type UploadChunkMutation = { uploadChunk: { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null } };

export type UploadPartMutationVariables = Exact<{
  uploadId: string | number;
  partNumber: number;
  chunk: Blob | null;
  chunkMd5?: string | null | undefined;
}>;


export type UploadPartMutation = { uploadPart: { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null } };

export type CompleteUploadMutationVariables = Exact<{
  uploadId: string | number;
  md5: string;
  description?: string | null | undefined;
}>;


export type CompleteUploadMutation = { completeUpload: { id: string, name: string, description: string, size: number, md5: string, mimeType: string | null, uploadedAt: string, downloadUrl: string, status: FileStatus, statusReason: string | null, author: { id: string, username: string } | null } };

export type AbortUploadMutationVariables = Exact<{
  uploadId: string | number;
}>;


export type AbortUploadMutation = { abortUpload: { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null } };

export type FilesQueryVariables = Exact<{
  first: number;
  after?: string | null | undefined;
  uploadedBefore?: string | null | undefined;
  search?: string | null | undefined;
}>;


export type FilesQuery = { files: { totalCount: number, edges: Array<{ cursor: string, node: { id: string, name: string, description: string, size: number, md5: string, mimeType: string | null, uploadedAt: string, downloadUrl: string, status: FileStatus, statusReason: string | null, author: { id: string, username: string } | null } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type FileByIdQueryVariables = Exact<{
  id: string | number;
}>;


export type FileByIdQuery = { file: { id: string, name: string, description: string, size: number, md5: string, mimeType: string | null, uploadedAt: string, downloadUrl: string, status: FileStatus, statusReason: string | null, author: { id: string, username: string } | null } | null };

export type DeleteFileMutationVariables = Exact<{
  id: string | number;
}>;


export type DeleteFileMutation = { deleteFile: boolean };

export type ServerLimitsQueryVariables = Exact<{ [key: string]: never; }>;


export type ServerLimitsQuery = { serverLimits: { maxFileSize: number, maxChunkSize: number, directUploads: boolean, parallelParts: boolean, maxPartsAhead: number } };

export type MissingPartsQueryVariables = Exact<{
  id: string | number;
  first: number;
}>;


export type MissingPartsQuery = { upload: { id: string, status: UploadStatus, missingParts: Array<number> } | null };

export type SignUploadPartsMutationVariables = Exact<{
  uploadId: string | number;
  partNumbers: Array<number> | number;
  partMd5s?: Array<string> | string | null | undefined;
}>;


export type SignUploadPartsMutation = { signUploadParts: Array<{ partNumber: number, url: string, expiresAt: string, headers: Array<{ name: string, value: string }> }> };

export type LogoutMutationVariables = Exact<{ [key: string]: never; }>;


export type LogoutMutation = { logout: boolean };

export type AccountInfoFragment = { id: string, username: string, isAdmin: boolean, disabled: boolean, createdAt: string };

export type UsersQueryVariables = Exact<{
  first?: number | null | undefined;
  after?: string | null | undefined;
  search?: string | null | undefined;
}>;


export type UsersQuery = { users: { totalCount: number, edges: Array<{ node: { id: string, username: string, isAdmin: boolean, disabled: boolean, createdAt: string } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type UpdateUserMutationVariables = Exact<{
  id: string | number;
  isAdmin?: boolean | null | undefined;
  disabled?: boolean | null | undefined;
}>;


export type UpdateUserMutation = { updateUser: { id: string, username: string, isAdmin: boolean, disabled: boolean, createdAt: string } };

export type DeleteUserMutationVariables = Exact<{
  id: string | number;
}>;


export type DeleteUserMutation = { deleteUser: boolean };

export type AccessTokenInfoFragment = { id: string, name: string, scopes: Array<TokenScope>, createdAt: string, lastUsedAt: string | null, expiresAt: string | null };

export type MyAccessTokensQueryVariables = Exact<{ [key: string]: never; }>;


export type MyAccessTokensQuery = { myAccessTokens: Array<{ id: string, name: string, scopes: Array<TokenScope>, createdAt: string, lastUsedAt: string | null, expiresAt: string | null }> };

export type CreateAccessTokenMutationVariables = Exact<{
  name: string;
  scopes: Array<TokenScope> | TokenScope;
  expiresInDays?: number | null | undefined;
}>;


export type CreateAccessTokenMutation = { createAccessToken: { token: string, accessToken: { id: string, name: string, scopes: Array<TokenScope>, createdAt: string, lastUsedAt: string | null, expiresAt: string | null } } };

export type MyUsageQueryVariables = Exact<{ [key: string]: never; }>;


export type MyUsageQuery = { me: { id: string, quotaBytes: number | null, usedBytes: number } | null };

export type UploadProgressSubscriptionVariables = Exact<{
  uploadId: string | number;
}>;


export type UploadProgressSubscription = { uploadProgress: { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null } };

export type LibraryChangedSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type LibraryChangedSubscription = { libraryChanged: { kind: LibraryEventKind, file: { id: string, name: string, description: string, size: number, md5: string, mimeType: string | null, uploadedAt: string, downloadUrl: string, status: FileStatus, statusReason: string | null, author: { id: string, username: string } | null } } };

export type RevokeAccessTokenMutationVariables = Exact<{
  id: string | number;
}>;


export type RevokeAccessTokenMutation = { revokeAccessToken: boolean };

export type MyUploadsChangedSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type MyUploadsChangedSubscription = { myUploadsChanged: { id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string, direct: boolean, partSize: number | null, partCount: number | null } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const UploadStateFragmentDoc = new TypedDocumentString(`
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}
    `, {"fragmentName":"UploadState"}) as unknown as TypedDocumentString<UploadStateFragment, unknown>;
export const FileInfoFragmentDoc = new TypedDocumentString(`
    fragment FileInfo on File {
  id
  name
  description
  size
  md5
  mimeType
  uploadedAt
  downloadUrl
  status
  statusReason
  author {
    id
    username
  }
}
    `, {"fragmentName":"FileInfo"}) as unknown as TypedDocumentString<FileInfoFragment, unknown>;
export const UserInfoFragmentDoc = new TypedDocumentString(`
    fragment UserInfo on User {
  id
  username
  isAdmin
}
    `, {"fragmentName":"UserInfo"}) as unknown as TypedDocumentString<UserInfoFragment, unknown>;
export const AccountInfoFragmentDoc = new TypedDocumentString(`
    fragment AccountInfo on User {
  id
  username
  isAdmin
  disabled
  createdAt
}
    `, {"fragmentName":"AccountInfo"}) as unknown as TypedDocumentString<AccountInfoFragment, unknown>;
export const AccessTokenInfoFragmentDoc = new TypedDocumentString(`
    fragment AccessTokenInfo on AccessToken {
  id
  name
  scopes
  createdAt
  lastUsedAt
  expiresAt
}
    `, {"fragmentName":"AccessTokenInfo"}) as unknown as TypedDocumentString<AccessTokenInfoFragment, unknown>;
export const LoginDocument = new TypedDocumentString(`
    mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) {
    token
    user {
      ...UserInfo
    }
  }
}
    fragment UserInfo on User {
  id
  username
  isAdmin
}`) as unknown as TypedDocumentString<LoginMutation, LoginMutationVariables>;
export const MeDocument = new TypedDocumentString(`
    query Me {
  me {
    ...UserInfo
  }
}
    fragment UserInfo on User {
  id
  username
  isAdmin
}`) as unknown as TypedDocumentString<MeQuery, MeQueryVariables>;
export const StartUploadDocument = new TypedDocumentString(`
    mutation StartUpload($input: StartUploadInput!) {
  startUpload(input: $input) {
    ...UploadState
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<StartUploadMutation, StartUploadMutationVariables>;
export const UploadStateDocument = new TypedDocumentString(`
    query UploadState($id: ID!) {
  upload(id: $id) {
    ...UploadState
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<UploadStateQuery, UploadStateQueryVariables>;
export const MyUploadsDocument = new TypedDocumentString(`
    query MyUploads($status: UploadStatus) {
  myUploads(status: $status) {
    ...UploadState
    createdAt
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<MyUploadsQuery, MyUploadsQueryVariables>;
export const UploadChunkDocument = new TypedDocumentString(`
    mutation UploadChunk($uploadId: ID!, $offset: SafeInt!, $chunk: Upload!, $chunkMd5: String) {
  uploadChunk(
    uploadId: $uploadId
    offset: $offset
    chunk: $chunk
    chunkMd5: $chunkMd5
  ) {
    ...UploadState
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<UploadChunkMutation, UploadChunkMutationVariables>;
export const UploadPartDocument = new TypedDocumentString(`
    mutation UploadPart($uploadId: ID!, $partNumber: Int!, $chunk: Upload!, $chunkMd5: String) {
  uploadPart(
    uploadId: $uploadId
    partNumber: $partNumber
    chunk: $chunk
    chunkMd5: $chunkMd5
  ) {
    ...UploadState
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<UploadPartMutation, UploadPartMutationVariables>;
export const CompleteUploadDocument = new TypedDocumentString(`
    mutation CompleteUpload($uploadId: ID!, $md5: String!, $description: String) {
  completeUpload(uploadId: $uploadId, md5: $md5, description: $description) {
    ...FileInfo
  }
}
    fragment FileInfo on File {
  id
  name
  description
  size
  md5
  mimeType
  uploadedAt
  downloadUrl
  status
  statusReason
  author {
    id
    username
  }
}`) as unknown as TypedDocumentString<CompleteUploadMutation, CompleteUploadMutationVariables>;
export const AbortUploadDocument = new TypedDocumentString(`
    mutation AbortUpload($uploadId: ID!) {
  abortUpload(uploadId: $uploadId) {
    ...UploadState
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<AbortUploadMutation, AbortUploadMutationVariables>;
export const FilesDocument = new TypedDocumentString(`
    query Files($first: Int!, $after: String, $uploadedBefore: DateTime, $search: String) {
  files(
    first: $first
    after: $after
    uploadedBefore: $uploadedBefore
    search: $search
  ) {
    edges {
      cursor
      node {
        ...FileInfo
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
    totalCount
  }
}
    fragment FileInfo on File {
  id
  name
  description
  size
  md5
  mimeType
  uploadedAt
  downloadUrl
  status
  statusReason
  author {
    id
    username
  }
}`) as unknown as TypedDocumentString<FilesQuery, FilesQueryVariables>;
export const FileByIdDocument = new TypedDocumentString(`
    query FileById($id: ID!) {
  file(id: $id) {
    ...FileInfo
  }
}
    fragment FileInfo on File {
  id
  name
  description
  size
  md5
  mimeType
  uploadedAt
  downloadUrl
  status
  statusReason
  author {
    id
    username
  }
}`) as unknown as TypedDocumentString<FileByIdQuery, FileByIdQueryVariables>;
export const DeleteFileDocument = new TypedDocumentString(`
    mutation DeleteFile($id: ID!) {
  deleteFile(id: $id)
}
    `) as unknown as TypedDocumentString<DeleteFileMutation, DeleteFileMutationVariables>;
export const ServerLimitsDocument = new TypedDocumentString(`
    query ServerLimits {
  serverLimits {
    maxFileSize
    maxChunkSize
    directUploads
    parallelParts
    maxPartsAhead
  }
}
    `) as unknown as TypedDocumentString<ServerLimitsQuery, ServerLimitsQueryVariables>;
export const MissingPartsDocument = new TypedDocumentString(`
    query MissingParts($id: ID!, $first: Int!) {
  upload(id: $id) {
    id
    status
    missingParts(first: $first)
  }
}
    `) as unknown as TypedDocumentString<MissingPartsQuery, MissingPartsQueryVariables>;
export const SignUploadPartsDocument = new TypedDocumentString(`
    mutation SignUploadParts($uploadId: ID!, $partNumbers: [Int!]!, $partMd5s: [String!]) {
  signUploadParts(
    uploadId: $uploadId
    partNumbers: $partNumbers
    partMd5s: $partMd5s
  ) {
    partNumber
    url
    headers {
      name
      value
    }
    expiresAt
  }
}
    `) as unknown as TypedDocumentString<SignUploadPartsMutation, SignUploadPartsMutationVariables>;
export const LogoutDocument = new TypedDocumentString(`
    mutation Logout {
  logout
}
    `) as unknown as TypedDocumentString<LogoutMutation, LogoutMutationVariables>;
export const UsersDocument = new TypedDocumentString(`
    query Users($first: Int, $after: String, $search: String) {
  users(first: $first, after: $after, search: $search) {
    edges {
      node {
        ...AccountInfo
      }
    }
    pageInfo {
      hasNextPage
      endCursor
    }
    totalCount
  }
}
    fragment AccountInfo on User {
  id
  username
  isAdmin
  disabled
  createdAt
}`) as unknown as TypedDocumentString<UsersQuery, UsersQueryVariables>;
export const UpdateUserDocument = new TypedDocumentString(`
    mutation UpdateUser($id: ID!, $isAdmin: Boolean, $disabled: Boolean) {
  updateUser(id: $id, isAdmin: $isAdmin, disabled: $disabled) {
    ...AccountInfo
  }
}
    fragment AccountInfo on User {
  id
  username
  isAdmin
  disabled
  createdAt
}`) as unknown as TypedDocumentString<UpdateUserMutation, UpdateUserMutationVariables>;
export const DeleteUserDocument = new TypedDocumentString(`
    mutation DeleteUser($id: ID!) {
  deleteUser(id: $id)
}
    `) as unknown as TypedDocumentString<DeleteUserMutation, DeleteUserMutationVariables>;
export const MyAccessTokensDocument = new TypedDocumentString(`
    query MyAccessTokens {
  myAccessTokens {
    ...AccessTokenInfo
  }
}
    fragment AccessTokenInfo on AccessToken {
  id
  name
  scopes
  createdAt
  lastUsedAt
  expiresAt
}`) as unknown as TypedDocumentString<MyAccessTokensQuery, MyAccessTokensQueryVariables>;
export const CreateAccessTokenDocument = new TypedDocumentString(`
    mutation CreateAccessToken($name: String!, $scopes: [TokenScope!]!, $expiresInDays: Int) {
  createAccessToken(name: $name, scopes: $scopes, expiresInDays: $expiresInDays) {
    token
    accessToken {
      ...AccessTokenInfo
    }
  }
}
    fragment AccessTokenInfo on AccessToken {
  id
  name
  scopes
  createdAt
  lastUsedAt
  expiresAt
}`) as unknown as TypedDocumentString<CreateAccessTokenMutation, CreateAccessTokenMutationVariables>;
export const MyUsageDocument = new TypedDocumentString(`
    query MyUsage {
  me {
    id
    quotaBytes
    usedBytes
  }
}
    `) as unknown as TypedDocumentString<MyUsageQuery, MyUsageQueryVariables>;
export const UploadProgressDocument = new TypedDocumentString(`
    subscription UploadProgress($uploadId: ID!) {
  uploadProgress(uploadId: $uploadId) {
    ...UploadState
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<UploadProgressSubscription, UploadProgressSubscriptionVariables>;
export const LibraryChangedDocument = new TypedDocumentString(`
    subscription LibraryChanged {
  libraryChanged {
    kind
    file {
      ...FileInfo
    }
  }
}
    fragment FileInfo on File {
  id
  name
  description
  size
  md5
  mimeType
  uploadedAt
  downloadUrl
  status
  statusReason
  author {
    id
    username
  }
}`) as unknown as TypedDocumentString<LibraryChangedSubscription, LibraryChangedSubscriptionVariables>;
export const RevokeAccessTokenDocument = new TypedDocumentString(`
    mutation RevokeAccessToken($id: ID!) {
  revokeAccessToken(id: $id)
}
    `) as unknown as TypedDocumentString<RevokeAccessTokenMutation, RevokeAccessTokenMutationVariables>;
export const MyUploadsChangedDocument = new TypedDocumentString(`
    subscription MyUploadsChanged {
  myUploadsChanged {
    ...UploadState
  }
}
    fragment UploadState on ChunkedUpload {
  id
  filename
  totalSize
  offset
  status
  maxChunkSize
  expiresAt
  direct
  partSize
  partCount
}`) as unknown as TypedDocumentString<MyUploadsChangedSubscription, MyUploadsChangedSubscriptionVariables>;