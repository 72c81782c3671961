import { ChunkedUpload } from './chunked-upload.entity';
import { File } from './file.entity';
import { User } from './user.entity';

export const entities = [User, ChunkedUpload, File];
export { ChunkedUpload, File, User };
export { UploadStatus } from './chunked-upload.entity';
