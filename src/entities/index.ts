import { ChunkedUpload } from '../uploads/chunked-upload.entity';
import { File, FileStatus } from './file.entity';
import { LoginThrottle } from './login-throttle.entity';
import { User } from './user.entity';

export const entities = [User, ChunkedUpload, File, LoginThrottle];
export { ChunkedUpload, File, FileStatus, LoginThrottle, User };
export { UploadStatus } from '../uploads/chunked-upload.entity';
