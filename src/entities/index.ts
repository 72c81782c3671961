import { ChunkedUpload } from '../uploads/chunked-upload.entity';
import { AccessToken, TokenScope } from './access-token.entity';
import { File, FileStatus } from './file.entity';
import { LoginThrottle } from './login-throttle.entity';
import { RevokedToken } from './revoked-token.entity';
import { User } from './user.entity';

export const entities = [User, ChunkedUpload, File, LoginThrottle, AccessToken, RevokedToken];
export { AccessToken, ChunkedUpload, File, FileStatus, LoginThrottle, RevokedToken, TokenScope, User };
export { UploadStatus } from '../uploads/chunked-upload.entity';
