import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
export type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
export type MakeOptional<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]?: Maybe<T[SubKey]> };
export type MakeMaybe<T, K extends keyof T> = Omit<T, K> & { [SubKey in K]: Maybe<T[SubKey]> };
export type MakeEmpty<T extends { [key: string]: unknown }, K extends keyof T> = { [_ in K]?: never };
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** A date-time string at UTC, such as 2007-12-03T10:15:30Z, compliant with the `date-time` format outlined in section 5.6 of the RFC 3339 profile of the ISO 8601 standard for representation of dates and times using the Gregorian calendar. */
  DateTime: { input: string; output: string; }
  /** The `SafeInt` scalar type represents non-fractional signed whole numeric values that are considered safe as defined by the ECMAScript specification. */
  SafeInt: { input: number; output: number; }
  /** The `Upload` scalar type represents a file upload. */
  Upload: { input: Blob | null; output: Blob | null; }
};

export type StartUploadInput = {
  description?: InputMaybe<Scalars['String']['input']>;
  /** Path components and control characters are removed. */
  filename: Scalars['String']['input'];
  /** Guessed from the file name when not given. */
  mimeType?: InputMaybe<Scalars['String']['input']>;
  /** The exact size of the whole file in bytes; 0 is an empty file. */
  totalSize: Scalars['SafeInt']['input'];
};

export type UploadStatus =
  | 'ABORTED'
  | 'COMPLETE'
  | 'EXPIRED'
  | 'UPLOADING';

export type UploadStateFragment = { __typename?: 'ChunkedUpload', id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string };

export type FileInfoFragment = { __typename?: 'File', id: string, name: string, description: string, size: number, md5: string, mimeType?: string | null, uploadedAt: string, downloadUrl: string, author?: { __typename?: 'User', id: string, username: string } | null };

export type UserInfoFragment = { __typename?: 'User', id: string, username: string, isAdmin: boolean };

export type LoginMutationVariables = Exact<{
  username: Scalars['String']['input'];
  password: Scalars['String']['input'];
}>;


export type LoginMutation = { __typename?: 'Mutation', login: { __typename?: 'AuthPayload', token: string, user: { __typename?: 'User', id: string, username: string, isAdmin: boolean } } };

export type MeQueryVariables = Exact<{ [key: string]: never; }>;


export type MeQuery = { __typename?: 'Query', me?: { __typename?: 'User', id: string, username: string, isAdmin: boolean } | null };

export type StartUploadMutationVariables = Exact<{
  input: StartUploadInput;
}>;


export type StartUploadMutation = { __typename?: 'Mutation', startUpload: { __typename?: 'ChunkedUpload', id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string } };

export type UploadStateQueryVariables = Exact<{
  id: Scalars['ID']['input'];
}>;


export type UploadStateQuery = { __typename?: 'Query', upload?: { __typename?: 'ChunkedUpload', id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string } | null };

export type MyUploadsQueryVariables = Exact<{
  status?: InputMaybe<UploadStatus>;
}>;


export type MyUploadsQuery = { __typename?: 'Query', myUploads: Array<{ __typename?: 'ChunkedUpload', createdAt: string, id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string }> };

export type UploadChunkMutationVariables = Exact<{
  uploadId: Scalars['ID']['input'];
  offset: Scalars['SafeInt']['input'];
  chunk: Scalars['Upload']['input'];
  chunkMd5?: InputMaybe<Scalars['String']['input']>;
}>;


export type UploadChunkMutation = { __typename?: 'Mutation', uploadChunk: { __typename?: 'ChunkedUpload', id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string } };

export type CompleteUploadMutationVariables = Exact<{
  uploadId: Scalars['ID']['input'];
  md5: Scalars['String']['input'];
  description?: InputMaybe<Scalars['String']['input']>;
}>;


export type CompleteUploadMutation = { __typename?: 'Mutation', completeUpload: { __typename?: 'File', id: string, name: string, description: string, size: number, md5: string, mimeType?: string | null, uploadedAt: string, downloadUrl: string, author?: { __typename?: 'User', id: string, username: string } | null } };

export type AbortUploadMutationVariables = Exact<{
  uploadId: Scalars['ID']['input'];
}>;


export type AbortUploadMutation = { __typename?: 'Mutation', abortUpload: { __typename?: 'ChunkedUpload', id: string, filename: string, totalSize: number, offset: number, status: UploadStatus, maxChunkSize: number, expiresAt: string } };

export type FilesQueryVariables = Exact<{
  first: Scalars['Int']['input'];
  after?: InputMaybe<Scalars['String']['input']>;
  uploadedBefore?: InputMaybe<Scalars['DateTime']['input']>;
  search?: InputMaybe<Scalars['String']['input']>;
}>;


export type FilesQuery = { __typename?: 'Query', files: { __typename?: 'FileConnection', totalCount: number, edges: Array<{ __typename?: 'FileEdge', cursor: string, node: { __typename?: 'File', id: string, name: string, description: string, size: number, md5: string, mimeType?: string | null, uploadedAt: string, downloadUrl: string, author?: { __typename?: 'User', id: string, username: string } | null } }>, pageInfo: { __typename?: 'PageInfo', hasNextPage: boolean, endCursor?: string | null } } };

export type FileByIdQueryVariables = Exact<{
  id: Scalars['ID']['input'];
}>;


export type FileByIdQuery = { __typename?: 'Query', file?: { __typename?: 'File', id: string, name: string, description: string, size: number, md5: string, mimeType?: string | null, uploadedAt: string, downloadUrl: string, author?: { __typename?: 'User', id: string, username: string } | null } | null };

export type DeleteFileMutationVariables = Exact<{
  id: Scalars['ID']['input'];
}>;


export type DeleteFileMutation = { __typename?: 'Mutation', deleteFile: boolean };

export type ServerLimitsQueryVariables = Exact<{ [key: string]: never; }>;


export type ServerLimitsQuery = { __typename?: 'Query', serverLimits: { __typename?: 'ServerLimits', maxFileSize: number, maxChunkSize: number } };

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
}`) as unknown as TypedDocumentString<UploadChunkMutation, UploadChunkMutationVariables>;
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
  }
}
    `) as unknown as TypedDocumentString<ServerLimitsQuery, ServerLimitsQueryVariables>;