import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { FileType } from './file.type';

export enum LibraryEventKind {
  ADDED = 'ADDED',
  UPDATED = 'UPDATED',
  DELETED = 'DELETED',
  READY = 'READY',
  REJECTED = 'REJECTED',
}

registerEnumType(LibraryEventKind, {
  name: 'LibraryEventKind',
  valuesConfig: {
    ADDED: { description: 'A file entered the library (an upload completed).' },
    UPDATED: { description: 'A file changed (its description, say).' },
    DELETED: { description: 'A file was deleted; `file` is what it was.' },
    READY: { description: 'A file finished its verification and can be downloaded.' },
    REJECTED: { description: 'A file failed its verification; its bytes are gone.' },
  },
});

@ObjectType('LibraryEvent')
export class LibraryEvent {
  @Field(() => LibraryEventKind)
  kind!: LibraryEventKind;

  @Field(() => FileType)
  file!: FileType;
}
