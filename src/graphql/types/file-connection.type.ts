import { Field, Int, ObjectType } from 'type-graphql';
import { FileType } from './file.type';

@ObjectType('FileEdge')
export class FileEdge {
  @Field(() => FileType)
  node!: FileType;

  @Field(() => String, { description: 'Pass as `after` to get the files that follow this one.' })
  cursor!: string;
}

@ObjectType('PageInfo')
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor?: string | null;
}

@ObjectType('FileConnection')
export class FileConnection {
  @Field(() => [FileEdge])
  edges!: FileEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;

  @Field(() => Int, { description: 'Files matching the filters, across all pages.' })
  totalCount!: number;
}
